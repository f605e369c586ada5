#!lua flags=allow-oom
--[[
  Give points back for a reservation, once (customer side). Two uses:

  ORPHAN: the pay protocol's safety net. Only the debit of the given attempt, and only when
  it stands (D:<attempt>:..): a debit whose reservation can no longer be sold to its payer
  (the protocol never leaves one, but money must not depend on that).
  SALE: step 2 of an operator's refund of a paid reservation (refund_sale.lua, then
  refund_done.lua). The sale's debit is given back: its amount when the record stands, or
  the given amount when the record was already forgotten (a sale older than the pay records'
  keep time); never twice (R:..). Step 1's REFUNDING guards that this runs only for a sale
  not yet refunded.

  The record turns into R:<attempt>:<amount>. Flag allow-oom: money owed back is paid back.

  KEYS[1] balance  string  integer minor units
  KEYS[2] debits   hash    reservation id -> record (see debit.lua)
  KEYS[3] history  list    "kind|amount|balance|atMs|ref", newest first (up to keep + 10)

  ARGV[1] reservation id, with its concert ("<concertId>.<32 hex>")
  ARGV[2] attempt number (ORPHAN: whose debit; SALE: the attempt that paid)
  ARGV[3] history length kept
  ARGV[4] ORPHAN | SALE
  ARGV[5] amount (minor units; SALE: the reservation's price)

  Returns
    {0, balance, amount}   refunded now
    {0, balance, 0}        nothing to refund (no such debit, or refunded before)
]]
-- @include clock
-- @include history

local balance, debits, history = KEYS[1], KEYS[2], KEYS[3]
local rid, attempt, keep, mode = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]

local record = redis.call('HGET', debits, rid) or ''
local kind, of, amount = string.match(record, '^(%u):(%d+):(%d+)')
if not kind and string.match(record, '^D:%d+$') then  -- "D:<amount>" of before: any attempt's
  kind, of, amount = 'D', attempt, string.sub(record, 3)
end
if kind == 'R' or (string.sub(record, 1, 2) == 'R:' and not kind) then
  return {0, tonumber(redis.call('GET', balance) or '0'), 0}
end
if mode == 'SALE' then
  if kind ~= 'D' then kind, amount = 'D', ARGV[5] end  -- its record was forgotten
  of = attempt
end
if kind ~= 'D' or of ~= attempt then
  return {0, tonumber(redis.call('GET', balance) or '0'), 0}
end
amount = tonumber(amount)
local after = redis.call('INCRBY', balance, amount)
redis.call('HSET', debits, rid, 'R:' .. attempt .. ':' .. amount)
remember(history, keep, time_ms(), 'REFUND', amount, after, rid)
return {0, after, amount}
