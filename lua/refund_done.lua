#!lua flags=allow-oom
--[[
  An operator's refund, step 3 of 3 (concert side), once the points are back (refund.lua
  SALE): REFUNDING -> REFUNDED, the seat free and on sale again, one sale and one of the
  customer's tickets less, a REFUNDED event. Idempotent.

  Flag allow-oom: it completes a refund whose money went back.

  KEYS[1] res        hash  reservation id -> JSON record
  KEYS[2] refunding  zset  reservation id -> refund start (ms)
  KEYS[3] taken      bits  seat index -> 1 while the seat is held or sold
  KEYS[4] free       hash  optionId -> free seats
  KEYS[5] concert    hash  field sold counts sales
  KEYS[6] gone       zset  closed reservation id -> closed at (ms)
  KEYS[7] tickets    hash  customerId -> ticket record (include/tickets.lua)
  KEYS[8] events     stream the concert's events
  KEYS[9] offers     zset  seat index -> when it came back (include/offers.lua)
  KEYS[10] settings  hash  the concert's settings (include/settings.lua)

  ARGV[1] res_id: the reservation's 32 hex (its reservationId is "<concertId>.<res_id>")
  ARGV[2] events kept in the stream (about)
  ARGV[3] default time a returned seat is on offer to the queue (ms)

  Returns
    {0, 1}   refunded now       {0, 0}   it was done before       {7}   no such reservation
]]
-- @include clock
-- @include settings
-- @include events
-- @include tickets
-- @include waiting

local k = {res = KEYS[1], refunding = KEYS[2], taken = KEYS[3], free = KEYS[4],
           concert = KEYS[5], gone = KEYS[6], tickets = KEYS[7], events = KEYS[8],
           offers = KEYS[9], settings = KEYS[10]}
local res_id, events_max = ARGV[1], tonumber(ARGV[2])
local now = time_ms()

local raw = redis.call('HGET', k.res, res_id)
if not raw then return {7} end
local rec = cjson.decode(raw)
if rec.status ~= 'REFUNDING' then return {0, 0} end
rec.status = 'REFUNDED'
rec.refunded = now
redis.call('HSET', k.res, res_id, cjson.encode(rec))
redis.call('ZREM', k.refunding, res_id)
redis.call('SETBIT', k.taken, rec.idx, 0)
redis.call('HINCRBY', k.free, rec.option, 1)
redis.call('HINCRBY', k.concert, 'sold', -1)
redis.call('ZADD', k.gone, now, res_id)
ticket_unpaid(k, rec.customer)
event_stream(k.events, events_max, now).reservation('REFUNDED', res_id, rec.seat, rec.customer)
-- A seat that comes back while customers wait is on offer to them first (include/release).
if configured(k.settings, {returnHoldMs = tonumber(ARGV[3])}).returnHoldMs > 0 and
    waiting_count(k.concert) > 0 then
  redis.call('ZADD', k.offers, now, rec.idx)
end
return {0, 1}
