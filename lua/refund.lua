#!lua flags=allow-oom
--[[
  Give back the debit of one pay attempt whose reservation can no longer be sold to its payer
  (a safety net: the pay protocol never leaves one, but money must not depend on that). Only
  that attempt's debit, once: the record turns from D:<attempt>:.. to R:<attempt>:<amount>.
  A debit of any other attempt is left alone.

  Flag allow-oom: money owed back is paid back, full or not.

  KEYS[1] balance  string  integer minor units
  KEYS[2] debits   hash    reservation id -> record (see debit.lua)
  KEYS[3] history  list    "kind|amount|balance|atMs|ref", newest first (up to keep + 10)

  ARGV[1] reservation id, with its concert ("<concertId>.<32 hex>")
  ARGV[2] attempt number whose debit to give back
  ARGV[3] history length kept

  Returns
    {0, balance, amount}   refunded now
    {0, balance, 0}        nothing to refund (that attempt did not debit, or was refunded)
]]
local balance_key, debits, history = KEYS[1], KEYS[2], KEYS[3]
local id, attempt, keep = ARGV[1], ARGV[2], tonumber(ARGV[3])

-- @include clock

-- @include history

local record = redis.call('HGET', debits, id) or ''
local kind, of, amount = string.match(record, '^(%u):(%d+):(%d+)')
if not kind and string.match(record, '^D:%d+$') then  -- "D:<amount>" of before: any attempt's
  kind, of, amount = 'D', attempt, string.sub(record, 3)
end
if kind ~= 'D' or of ~= attempt then
  return {0, tonumber(redis.call('GET', balance_key) or '0'), 0}
end
amount = tonumber(amount)
local balance = redis.call('INCRBY', balance_key, amount)
redis.call('HSET', debits, id, 'R:' .. attempt .. ':' .. amount)
remember('REFUND', amount, balance, id)
return {0, balance, amount}
