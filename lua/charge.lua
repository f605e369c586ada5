#!lua
--[[
  Charge points to a customer's balance. With an idempotency record key, a retry with the same
  request returns the first answer and charges once; the same key with another request is
  refused.

  KEYS[1] balance   string  integer minor units
  KEYS[2] history   list    "kind|amount|balance|atMs|ref", newest first (up to keep + 10)
  KEYS[3] (optional) idempotency record  string "fingerprint|balance", expires

  ARGV[1] amount (minor units, > 0)
  ARGV[2] balance limit (minor units)
  ARGV[3] request fingerprint (compared on a retry with the same key)
  ARGV[4] idempotency record TTL (seconds)
  ARGV[5] history length kept

  Returns
    {0, balance, 0}   charged (balance after)
    {0, balance, 1}   a replay of the first answer to this idempotency key (nothing changed)
    {12}              the balance would exceed its limit (nothing changed)
    {13}              idempotency key reused with another request (nothing changed)
]]
local balance_key, history, idem = KEYS[1], KEYS[2], KEYS[3]
local amount, max_balance = tonumber(ARGV[1]), tonumber(ARGV[2])
local fingerprint, idem_ttl, keep = ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

if idem then
  local first = redis.call('GET', idem)
  if first then
    local fp, balance = string.match(first, '^(.*)|(%d+)$')
    if fp ~= fingerprint then return {13} end
    return {0, tonumber(balance), 1}
  end
end

if tonumber(redis.call('GET', balance_key) or '0') + amount > max_balance then return {12} end
local balance = redis.call('INCRBY', balance_key, amount)
-- %d, not tostring: Lua prints numbers of 15+ digits as 1e+14. Trimmed in steps of 10
-- rather than on every push: one call less on the hot path.
if redis.call('LPUSH', history, string.format('CHARGE|%d|%d|%d|', amount, balance, now))
    > keep + 10 then
  redis.call('LTRIM', history, 0, keep - 1)
end
if idem then
  redis.call('SET', idem, string.format('%s|%d', fingerprint, balance), 'EX', idem_ttl)
end
return {0, balance, 0}
