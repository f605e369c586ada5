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

  ARGV[1] reservation id (32 hex chars)
  ARGV[2] events kept in the stream (about)

  Returns
    {0, 1}   refunded now       {0, 0}   it was done before       {7}   no such reservation
]]
local res, refunding, taken, free, concert, gone, tickets, events = KEYS[1], KEYS[2], KEYS[3],
  KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local id, events_max = ARGV[1], tonumber(ARGV[2])

-- @include clock

-- @include tickets

-- @include events

local raw = redis.call('HGET', res, id)
if not raw then return {7} end
local rec = cjson.decode(raw)
if rec.status ~= 'REFUNDING' then return {0, 0} end
rec.status = 'REFUNDED'
rec.refunded = now
redis.call('HSET', res, id, cjson.encode(rec))
redis.call('ZREM', refunding, id)
redis.call('SETBIT', taken, rec.idx, 0)
redis.call('HINCRBY', free, rec.option, 1)
redis.call('HINCRBY', concert, 'sold', -1)
redis.call('ZADD', gone, now, id)
ticket_unpaid(rec.customer)
emit('REFUNDED', id, rec.seat, rec.customer)
return {0, 1}
