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
  KEYS[6]  tokens   hash  customerId -> "<seq>" (WAITING) or "<seq>@<activeUntilMs>"
  KEYS[7]  active   zset  customerId -> ACTIVE token expiry (ms)
  KEYS[8]  concert  hash  field sold counts sales
  KEYS[9]  gone     zset  closed reservation id -> closed at (ms)
  KEYS[10] tickets  hash  customerId -> ticket record (include/tickets.lua)
  KEYS[11] events   stream the concert's events
  KEYS[12] offers    zset  seat index -> when it came back (include/offers.lua)
  KEYS[13] settings hash  the concert's settings (include/settings.lua)

  ARGV[1] res_id: the reservation's 32 hex (its reservationId is "<concertId>.<res_id>")
  ARGV[2] attempt number (from pay_begin.lua)
  ARGV[3] PAID | REFUSED
  ARGV[4] balance right after the debit (minor units; PAID only, kept as the pay's answer)
  ARGV[5] events kept in the stream (about)
  ARGV[6] default time a returned seat is on offer to the queue (ms)

  Returns
    {0, tokenFinished}   PAID (tokenFinished 1 when the token ended here)
    {0, 0}               REFUSED handled, or nothing left to do
    {7}                  no such reservation
    {17}                 PAID for an attempt that is not the one PAYING: its debit buys
                         nothing (the caller refunds that attempt's debit)
]]
-- @include clock
-- @include settings
-- @include events
-- @include pay_finish_step

local k = {res = KEYS[1], paying = KEYS[2], holds = KEYS[3], taken = KEYS[4], free = KEYS[5],
           tokens = KEYS[6], active = KEYS[7], concert = KEYS[8], gone = KEYS[9],
           tickets = KEYS[10], events = KEYS[11], offers = KEYS[12], settings = KEYS[13]}
local res_id, attempt, outcome, balance = ARGV[1], tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
local events_max = tonumber(ARGV[5])
local now = time_ms()
local offer_ms = configured(k.settings, {returnHoldMs = tonumber(ARGV[6])}).returnHoldMs

return pay_finish_step(k, now, event_stream(k.events, events_max, now), res_id, attempt,
                       outcome, balance, offer_ms)
