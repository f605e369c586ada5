#!lua flags=allow-oom
--[[
  Pay, step 3 of 3 (concert side): after the debit, mark the reservation PAID and its seat
  sold, and finish the token when the customer has no other open hold under it; after a
  refused or voided debit, return the reservation to HELD (or release it if its time is up).
  Idempotent: finishing the same attempt twice changes nothing the second time. The protocol
  as a whole: engine/pay.py.

  Flag allow-oom: it completes a pay whose first steps ran, which must never be left half-done.

  KEYS[1]  res      hash  reservation id -> JSON record
  KEYS[2]  paying   zset  reservation id -> pay start (ms)
  KEYS[3]  holds    zset  reservation id -> hold expiry (ms)
  KEYS[4]  taken    bits  seat index -> 1 while the seat is held or sold
  KEYS[5]  free     hash  optionId -> free seats
  KEYS[6]  tokens   hash  customerId -> "secret@activeUntilMs" or "secret:lastPollMs"
  KEYS[7]  active   zset  customerId -> ACTIVE token expiry (ms)
  KEYS[8]  concert  hash  field sold counts sales
  KEYS[9]  gone     zset  closed reservation id -> closed at (ms)
  KEYS[10] tickets  hash  customerId -> ticket record (include/tickets.lua)
  KEYS[11] events   stream the concert's events

  ARGV[1] reservation id (32 hex chars)
  ARGV[2] attempt number (from pay_begin.lua)
  ARGV[3] PAID | REFUSED
  ARGV[4] balance right after the debit (minor units; PAID only, kept as the pay's answer)
  ARGV[5] events kept in the stream (about)

  Returns
    {0, tokenFinished}   PAID (tokenFinished 1 when the token ended here)
    {0, 0}               REFUSED handled, or nothing left to do
    {7}                  no such reservation
    {17}                 PAID for an attempt that is not the one PAYING: its debit buys
                         nothing (the caller refunds that attempt's debit)
]]
local res, paying, holds, taken, free = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local tokens, active, concert, gone = KEYS[6], KEYS[7], KEYS[8], KEYS[9]
local tickets, events = KEYS[10], KEYS[11]
local id, attempt, outcome, balance = ARGV[1], tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
local events_max = tonumber(ARGV[5])

-- @include clock

-- @include tickets

-- @include events

-- @include release

-- @include pay_finish_step

return pay_finish_step(id, attempt, outcome, balance)
