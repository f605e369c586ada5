#!lua
--[[
  Pay, step 1 of 3 (concert side): lock a HELD reservation for payment by marking it PAYING
  under a new attempt number. A PAYING hold never expires; step 3 (pay_finish.lua) marks it
  PAID or returns it to HELD. Of concurrent pays of one reservation exactly one gets past this
  step. The protocol as a whole: engine/pay.py.

  A reservation already PAID by this customer answers with that payment (a retry whose first
  reply was lost learns it paid), whether or not the token is still alive: the reservation id
  (128 random bits) and the customer prove who asks.

  KEYS[1] tokens   hash  customerId -> "<seq>" (WAITING) or "<seq>@<activeUntilMs>"
  KEYS[2] active   zset  customerId -> ACTIVE token expiry (ms)
  KEYS[3] res      hash  reservation id -> JSON record
  KEYS[4] holds    zset  reservation id -> hold expiry (ms)
  KEYS[5] paying   zset  reservation id -> pay start (ms)
  KEYS[6] taken    bits  seat index -> 1 while the seat is held or sold
  KEYS[7] free     hash  optionId -> free seats
  KEYS[8] gone     zset  closed reservation id -> closed at (ms)
  KEYS[9] settings hash  the concert's settings (include/settings.lua)
  KEYS[10] tickets  hash  customerId -> ticket record (include/tickets.lua)
  KEYS[11] events   stream the concert's events
  KEYS[12] concert   hash  live: the waiters (a seat that comes back while some wait is put
                           on offer to them)
  KEYS[13] offers    zset  seat index -> when it came back (include/offers.lua)

  ARGV[1] customerId (from the token)
  ARGV[2] the token's seq (its place in the queue; the engine checked its mac)
  ARGV[3] default waiting idle limit (ms)
  ARGV[4] res_id: the reservation's 32 hex (its reservationId is "<concertId>.<res_id>")
  ARGV[5] a pay in PAYING this long is stale: its payer crashed (ms)
  ARGV[6] events kept in the stream (about)
  ARGV[7] default time a returned seat is on offer to the queue (ms)

  Returns
    {0, priceMinor, attempt}   now PAYING under this attempt number
    {18, amount, balanceAfter} PAID before by this customer: that payment's answer
                               (balanceAfter -1 when the record predates keeping it)
    {14, attempt}              a stale PAYING attempt: finish it (recovery), then call again
    {1} token unknown/expired   {2} token WAITING   {7} no such reservation of this customer
    {9} hold expired   {10} another pay is in progress   {15} cancelled
    {24} refunded (by an operator)
]]
-- @include clock
-- @include settings
-- @include events
-- @include pay_begin_step

local k = {tokens = KEYS[1], active = KEYS[2], res = KEYS[3], holds = KEYS[4], paying = KEYS[5],
           taken = KEYS[6], free = KEYS[7], gone = KEYS[8], settings = KEYS[9],
           tickets = KEYS[10], events = KEYS[11], concert = KEYS[12], offers = KEYS[13]}
local customer, token = ARGV[1], ARGV[2]
local res_id, stale_ms, events_max = ARGV[4], tonumber(ARGV[5]), tonumber(ARGV[6])
local now = time_ms()
local cfg = configured(k.settings, {idleMs = tonumber(ARGV[3]), returnHoldMs = tonumber(ARGV[7])})

return pay_begin_step(k, now, event_stream(k.events, events_max, now), customer, token,
                      stale_ms, res_id, cfg.returnHoldMs)
