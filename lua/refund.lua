#!lua flags=allow-oom
--[[
  Give back a pay's debit whose reservation can no longer be sold to its payer (a safety net:
  the pay protocol never leaves one, but money must not depend on that). Once per
  reservation: the record turns from D: to R:.

  Flag allow-oom: money owed back is paid back, full or not.

  KEYS[1] balance  string  integer minor units
  KEYS[2] debits   hash    reservation id -> "D:<amount>" | "V:<attempt>" | "R:<amount>"
  KEYS[3] history  list    "kind|amount|balance|atMs|ref", newest first (up to keep + 10)

  ARGV[1] reservation id, with its concert ("<concertId>.<32 hex>")
  ARGV[2] history length kept

  Returns
    {0, balance, amount}   refunded now
    {0, balance, 0}        nothing to refund (no debit, voided, or refunded before)
]]
local balance_key, debits, history = KEYS[1], KEYS[2], KEYS[3]
local id, keep = ARGV[1], tonumber(ARGV[2])

local record = redis.call('HGET', debits, id)
if not record or string.sub(record, 1, 2) ~= 'D:' then
  return {0, tonumber(redis.call('GET', balance_key) or '0'), 0}
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local amount = tonumber(string.sub(record, 3))
local balance = redis.call('INCRBY', balance_key, amount)
redis.call('HSET', debits, id, 'R:' .. amount)
local entry = string.format('REFUND|%d|%d|%d|%s', amount, balance, now, id)
if redis.call('LPUSH', history, entry) > keep + 10 then
  redis.call('LTRIM', history, 0, keep - 1)
end
return {0, balance, amount}
