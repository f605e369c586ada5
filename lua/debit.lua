#!lua flags=allow-oom
--[[
  Pay, step 2 of 3 (customer side): debit the price once for one pay attempt of a reservation,
  or void an interrupted attempt so that it can never debit later. The reservation's record
  names the attempt it speaks for, and that attempt only ever rises:

    D:<attempt>:<amount>:<balanceAfter>   debited by that attempt
    V:<attempt>                           no debit up to that attempt (voided or refused)
    R:<attempt>:<amount>                  that attempt's debit was given back (refund.lua)

  Records of before attempts were named ("D:<amount>", "R:<amount>") are read as they were
  meant: a debit of the attempt in flight, a refund for all.

  "Already debited" is the answer only to the attempt that debited. A later attempt finds the
  record of an earlier one: that earlier attempt can never be PAID any more (pay_begin.lua
  moved the reservation past it), so an earlier debit is refunded here before going on.

  Flag allow-oom: it only runs for a pay whose step 1 ran, which must not be left half-done
  when Redis is full (step 1 itself is refused then).

  KEYS[1] balance  string  integer minor units
  KEYS[2] debits   hash    reservation id -> record (above)
  KEYS[3] history  list    "kind|amount|balance|atMs|ref", newest first (up to keep + 10)

  ARGV[1] reservation id, with its concert ("<concertId>.<32 hex>")
  ARGV[2] attempt number (from pay_begin.lua)
  ARGV[3] amount (minor units)
  ARGV[4] DEBIT | VOID  (VOID: recovery of an interrupted pay; it debits nothing)
  ARGV[5] history length kept

  Returns
    {0, balanceAfter, 0, amount}   debited now
    {0, balanceAfter, 1, amount}   this attempt had debited before (nothing changed; the
                                   balance right after that debit)
    {11, balance}                  balance too low (nothing debited)
    {16}                           this attempt is void, superseded by a later one, or its
                                   debit was refunded (nothing debited)
]]
-- @include clock
-- @include debit_step

local u = {balance = KEYS[1], debits = KEYS[2], history = KEYS[3]}
local rid, attempt, amount = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local mode, keep = ARGV[4], tonumber(ARGV[5])

return debit_step(u, keep, time_ms(), rid, attempt, amount, mode)
