#!lua flags=no-writes
--[[
  What anyone may see of one concert (GET /api/concerts and /api/concerts/{id}, no token):
  its name, its performances' dates, its free seats, and whether it is paused or opens later.

  KEYS[1] concert   hash  name (a concert exists once it has one)
  KEYS[2] options   hash  optionId -> date (RFC 3339)
  KEYS[3] free      hash  optionId -> free seats
  KEYS[4] settings  hash  the concert's settings: paused (0/1), opensAt (ms)

  Returns
    {0, name, paused, opensAtMs, freeSeats, optionId, date, optionId, date, ...}
        paused 0/1; opensAtMs 0 when none; the performances in no order
    {3} no such concert
]]
local concert, options, free, settings = KEYS[1], KEYS[2], KEYS[3], KEYS[4]

local name = redis.call('HGET', concert, 'name')
if not name then return {3} end
local knobs = redis.call('HMGET', settings, 'paused', 'opensAt')
local free_seats = 0
for _, count in ipairs(redis.call('HVALS', free)) do free_seats = free_seats + tonumber(count) end
local out = {0, name, tonumber(knobs[1] or '0'), tonumber(knobs[2] or '0'), free_seats}
for _, v in ipairs(redis.call('HGETALL', options)) do out[#out + 1] = v end
return out
