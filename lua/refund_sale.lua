#!lua
--[[
  An operator refunds a paid reservation, step 1 of 3 (concert side): PAID -> REFUNDING, with
  the seat still sold, so that step 2 (refund.lua SALE, the customer's side) gives the points
  back exactly once and step 3 (refund_done.lua) puts the seat on sale again. Idempotent: a
  refund already under way or done answers the same, and the caller finishes what is left. A
  refund left half-done is finished by the tick (admit.lua lists REFUNDING ones). A ticket
  checked in at the door (checkin.lua) is refunded only when forced.

  KEYS[1] res        hash  reservation id -> JSON record
  KEYS[2] refunding  zset  reservation id -> refund start (ms)

  ARGV[1] res_id: the reservation's 32 hex (its reservationId is "<concertId>.<res_id>")
  ARGV[2] 1: refund a ticket checked in too (the operator forces it); 0 or none: do not

  Returns
    {0, status, priceMinor, customerId, attempt}   status REFUNDING (to finish) or REFUNDED
    {7}   no such reservation
    {25}  not paid (held, being paid, expired or cancelled): nothing to refund
    {41, checkedInMs}   checked in at the door, and not forced: nothing changed
]]
-- @include clock

local res, refunding, res_id, force = KEYS[1], KEYS[2], ARGV[1], ARGV[2] == '1'

local raw = redis.call('HGET', res, res_id)
if not raw then return {7} end
local rec = cjson.decode(raw)
if rec.status == 'PAID' then
  if rec.checkedIn and not force then return {41, rec.checkedIn} end
  rec.status = 'REFUNDING'
  redis.call('HSET', res, res_id, cjson.encode(rec))
  redis.call('ZADD', refunding, time_ms(), res_id)
elseif rec.status ~= 'REFUNDING' and rec.status ~= 'REFUNDED' then
  return {25}
end
return {0, rec.status, rec.price, rec.customer, rec.attempt}
