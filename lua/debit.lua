#!lua flags=allow-oom
--[[
  Pay, step 2 of 3 (customer side): debit the price once per reservation, recording the
  reservation id, or void an interrupted attempt so that it can never debit later.

  Flag allow-oom: it only runs for a pay whose step 1 ran, which must not be left half-done
  when Redis is full (step 1 itself is refused then).

  KEYS[1] balance  string  integer minor units
  KEYS[2] debits   hash    reservation id -> "D:<amount>" (debited) | "V:<attempt>" (voided
                           up to that attempt) | "R:<amount>" (debited, then refunded)
  KEYS[3] history  list    "kind|amount|balance|atMs|ref", newest first (up to keep + 10)

  ARGV[1] reservation id, with its concert ("<concertId>.<32 hex>")
  ARGV[2] attempt number (from pay_begin.lua)
  ARGV[3] amount (minor units)
  ARGV[4] DEBIT | VOID  (VOID: recovery of a crashed pay; it debits nothing)
  ARGV[5] history length kept

  Returns
    {0, balance, 0, amount}   debited now (balance after)
    {0, balance, 1, amount}   this reservation was already debited (nothing changed)
    {11, balance}             balance too low (nothing changed)
    {16}                      this attempt is void, or the debit was refunded (nothing
                              debited; a void only ever rises to a later attempt)
]]
local balance_key, debits, history = KEYS[1], KEYS[2], KEYS[3]
local id, attempt, amount = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local mode, keep = ARGV[4], tonumber(ARGV[5])

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local record = redis.call('HGET', debits, id)
local kind = record and string.sub(record, 1, 2)
if kind == 'D:' then
  return {0, tonumber(redis.call('GET', balance_key) or '0'), 1, tonumber(string.sub(record, 3))}
end
if kind == 'R:' then return {16} end
if kind == 'V:' and tonumber(string.sub(record, 3)) >= attempt then return {16} end
if mode == 'VOID' then
  redis.call('HSET', debits, id, 'V:' .. attempt)
  return {16}
end

local balance = tonumber(redis.call('GET', balance_key) or '0')
if balance < amount then return {11, balance} end
balance = redis.call('DECRBY', balance_key, amount)
redis.call('HSET', debits, id, 'D:' .. amount)
-- %d, not tostring: Lua prints numbers of 15+ digits as 1e+14. Trimmed in steps of 10
-- rather than on every push: one call less on the hot path.
local entry = string.format('PAYMENT|%d|%d|%d|%s', amount, balance, now, id)
if redis.call('LPUSH', history, entry) > keep + 10 then
  redis.call('LTRIM', history, 0, keep - 1)
end
return {0, balance, 0, amount}
