#!lua
--[[
  Charge points to a customer's balance. With an idempotency record key, a retry with the same
  request returns the first answer, whether it was a charge or a refusal, and charges at most
  once; the same key with another request is refused.

  KEYS[1] balance   string  integer minor units
  KEYS[2] history   list    "kind|amount|balance|atMs|ref", newest first (up to keep + 10)
  KEYS[3] idem      string  (optional) the idempotency record, expires: "fingerprint|balance"
                            (charged) or "fingerprint|!12" (refused with that code)

  ARGV[1] amount (minor units, > 0)
  ARGV[2] balance limit (minor units)
  ARGV[3] request fingerprint (compared on a retry with the same key)
  ARGV[4] idempotency record TTL (ms)
  ARGV[5] history length kept

  Returns
    {0, balance, 0}   charged (balance after)
    {0, balance, 1}   a replay of the first answer to this idempotency key (nothing changed)
    {12}              the balance would exceed its limit (nothing charged; with a key, the
                      refusal is its first answer)
    {13}              idempotency key reused with another request (nothing changed)
]]
-- @include clock
-- @include history

local balance, history, idem = KEYS[1], KEYS[2], KEYS[3]
local amount, max_balance = tonumber(ARGV[1]), tonumber(ARGV[2])
local fingerprint, idem_ttl, keep = ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])

if idem then
  local first = redis.call('GET', idem)
  if first then
    local fp, answer = string.match(first, '^(.*)|(!?%d+)$')
    if fp ~= fingerprint then return {13} end
    if string.sub(answer, 1, 1) == '!' then return {tonumber(string.sub(answer, 2))} end
    return {0, tonumber(answer), 1}
  end
end

if tonumber(redis.call('GET', balance) or '0') + amount > max_balance then
  if idem then redis.call('SET', idem, fingerprint .. '|!12', 'PX', idem_ttl) end
  return {12}
end
local after = redis.call('INCRBY', balance, amount)
remember(history, keep, time_ms(), 'CHARGE', amount, after)
if idem then
  redis.call('SET', idem, string.format('%s|%d', fingerprint, after), 'PX', idem_ttl)
end
return {0, after, 0}
