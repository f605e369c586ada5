#!lua
--[[
  Pay in one call, where the concert's keys and the customer's live on one Redis (not a
  cluster: there they are in different slots, and pay runs as its three steps, one call each).
  The same three steps, run back to back inside one script: lua/pay_begin.lua,
  lua/debit.lua and lua/pay_finish.lua share their code with it (include/*_step.lua), so the
  records it leaves are theirs and the stepped protocol (engine/pay.py) can take over any
  reservation. Atomic: no other call sees a reservation PAYING because of it, and a reply lost
  on the way leaves nothing to recover, only a PAID to learn by paying again.

  Not allow-oom: when Redis is full it is refused whole, and nothing has changed.

  KEYS[1]  tokens   hash  customerId -> "<seq>" (WAITING) or "<seq>@<activeUntilMs>"
  KEYS[2]  active   zset  customerId -> ACTIVE token expiry (ms)
  KEYS[3]  res      hash  reservation id -> JSON record
  KEYS[4]  holds    zset  reservation id -> hold expiry (ms)
  KEYS[5]  paying   zset  reservation id -> pay start (ms)
  KEYS[6]  taken    bits  seat index -> 1 while the seat is held or sold
  KEYS[7]  free     hash  optionId -> free seats
  KEYS[8]  gone     zset  closed reservation id -> closed at (ms)
  KEYS[9]  settings hash  the concert's settings (include/settings.lua)
  KEYS[10] tickets  hash  customerId -> ticket record (include/tickets.lua)
  KEYS[11] events   stream the concert's events
  KEYS[12] concert  hash  field sold counts sales
  KEYS[13] balance  string  the customer's points, integer minor units
  KEYS[14] debits   hash    reservation id -> debit record (lua/debit.lua)
  KEYS[15] history  list    the customer's money movements, newest first
  KEYS[16] offers    zset  seat index -> when it came back (include/offers.lua)

  ARGV[1] customerId (from the token)
  ARGV[2] the token's seq (its place in the queue; the engine checked its mac)
  ARGV[3] default waiting idle limit (ms)
  ARGV[4] res_id: the reservation's 32 hex (its reservationId is "<concertId>.<res_id>")
  ARGV[5] a pay in PAYING this long is stale: its payer crashed (ms)
  ARGV[6] events kept in the stream (about)
  ARGV[7] reservation id, with its concert ("<concertId>.<32 hex>")
  ARGV[8] history length kept
  ARGV[9] default time a returned seat is on offer to the queue (ms)

  Returns
    {0, priceMinor, balanceAfter}  PAID now: debited, seat sold, token finished if it was
                                   the last open hold under it
    {11, balance}                  balance too low: nothing debited, the reservation HELD
                                   again (or released, its time being up)
    every other reply of lua/pay_begin.lua ({18, amount, balanceAfter} PAID before; {14,
    attempt} a stale attempt to recover first; {1} {2} {7} {9} {10} {15} {24}) and {16} of
    lua/debit.lua (a record of a later attempt: refused like 11, nothing debited); {7} and
    {17} of lua/pay_finish.lua cannot come here (the attempt is PAYING under this call)
]]
-- @include clock
-- @include settings
-- @include events
-- @include pay_begin_step
-- @include debit_step
-- @include pay_finish_step

local k = {tokens = KEYS[1], active = KEYS[2], res = KEYS[3], holds = KEYS[4], paying = KEYS[5],
           taken = KEYS[6], free = KEYS[7], gone = KEYS[8], settings = KEYS[9],
           tickets = KEYS[10], events = KEYS[11], concert = KEYS[12]}
k.offers = KEYS[16]
local u = {balance = KEYS[13], debits = KEYS[14], history = KEYS[15]}
local customer, token = ARGV[1], ARGV[2]
local res_id, stale_ms, events_max = ARGV[4], tonumber(ARGV[5]), tonumber(ARGV[6])
local rid, keep = ARGV[7], tonumber(ARGV[8])
local now = time_ms()
local cfg = configured(k.settings, {idleMs = tonumber(ARGV[3]), returnHoldMs = tonumber(ARGV[9])})
local stream = event_stream(k.events, events_max, now)

local begun = pay_begin_step(k, now, stream, customer, token, stale_ms, res_id,
                             cfg.returnHoldMs)
if begun[1] ~= 0 then return begun end
local price, attempt = begun[2], begun[3]
local debited = debit_step(u, keep, now, rid, attempt, price, 'DEBIT')
if debited[1] ~= 0 then
  pay_finish_step(k, now, stream, res_id, attempt, 'REFUSED', 0, cfg.returnHoldMs)
  return debited
end
-- The attempt is PAYING under this call since step 1: step 3 cannot answer 17 or 7 here.
pay_finish_step(k, now, stream, res_id, attempt, 'PAID', debited[2], cfg.returnHoldMs)
return {0, price, debited[2]}
