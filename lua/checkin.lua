#!lua flags=allow-oom
--[[
  Check a ticket in at the door, once: a PAID reservation not checked in yet is marked checked
  in (its record's checkedIn), counted (the concert's checkedin) and a CHECKED_IN event
  appended. Of any number of concurrent scans of one ticket exactly one checks in; the others
  are told when that was. The engine verified the ticket's signature (engine/tickets.py):
  this decides by the record alone.

  Flag allow-oom: a paid ticket lets its holder in when Redis is full (a few bytes).

  KEYS[1] res      hash   reservation id -> JSON record
  KEYS[2] concert  hash   field checkedin counts check-ins
  KEYS[3] events   stream the concert's events

  ARGV[1] res_id: the reservation's 32 hex (its reservationId is "<concertId>.<res_id>")
  ARGV[2] seatId the ticket names
  ARGV[3] events kept in the stream (about)

  Returns
    {0, atMs}    checked in now (atMs: Redis's time)
    {40}         the record is no sale of that seat (a ticket signed for no such sale)
    {41, atMs}   checked in before, at atMs
    {42}         refunded: a refund under way or done, or its record forgotten since
]]
-- @include clock
-- @include events

local k = {res = KEYS[1], concert = KEYS[2], events = KEYS[3]}
local res_id, seat, events_max = ARGV[1], ARGV[2], tonumber(ARGV[3])
local now = time_ms()

local raw = redis.call('HGET', k.res, res_id)
-- Only a PAID reservation gets a ticket, and a PAID record is never purged: a record gone is
-- a refunded one that the tick forgot (admit.lua).
if not raw then return {42} end
local rec = cjson.decode(raw)
if rec.status == 'REFUNDING' or rec.status == 'REFUNDED' then return {42} end
if rec.status ~= 'PAID' or rec.seat ~= seat then return {40} end
if rec.checkedIn then return {41, rec.checkedIn} end
rec.checkedIn = now
redis.call('HSET', k.res, res_id, cjson.encode(rec))
redis.call('HINCRBY', k.concert, 'checkedin', 1)
event_stream(k.events, events_max, now).reservation('CHECKED_IN', res_id, rec.seat,
                                                     rec.customer)
return {0, now}
