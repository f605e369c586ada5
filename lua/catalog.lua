#!lua flags=no-writes
--[[
  The seats of one concert option as the API shows them, in the order of their places in the
  taken-seat bitmap (by construction: each seat's score in the view is its offset in the
  option's slice, see create_option.lua). Seats never change once created, so the engine reads
  this once per option and keeps it; seats.lua then only returns the option's bits.

  KEYS[1] layout  hash  optionId -> "start:count:version" of its seats in the bitmap
  KEYS[2] seatview zset  the seat as JSON {"id","number","price","section","row"} -> its offset

  ARGV[1] optionId

  Returns
    {0, version, start, seatJson, seatJson, ...}   the i-th JSON is bit (start + i - 1)
    {4}                                          no such option in this concert
]]
local layout, seatview = KEYS[1], KEYS[2]
local option = ARGV[1]

local slice = redis.call('HGET', layout, option)
if not slice then return {4} end
local start, count, version = string.match(slice, '^(%d+):(%d+):(%w+)$')
local out = {0, version, tonumber(start)}
for _, seat in ipairs(redis.call('ZRANGE', seatview, 0, -1)) do out[#out + 1] = seat end
return out
