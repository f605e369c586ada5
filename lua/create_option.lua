#!lua
--[[
  Create a concert option (a dated performance) with its seats, unless it exists: seeding is
  idempotent and never touches an option, hold or sale that is already there. The option's
  seats get consecutive places in the concert's taken-seat bitmap, in the order given.

  Invariant the seat list relies on (engine/catalog.py): the view's i-th member by score is the
  seat at bitmap place start + i. The score is that offset i itself, never a seat number
  (numbers repeat per row or section, and ties would sort by text, not by place).

  KEYS[1] concert  hash  name, nbits (bitmap places handed out so far)
  KEYS[2] options  hash  optionId -> date
  KEYS[3] free     hash  optionId -> free seats
  KEYS[4] layout   hash  optionId -> "start:count:version" of its seats in the bitmap
  KEYS[5] seats    hash  seatId -> "number:price:index" (price in minor units)
  KEYS[6] view     zset  the seat as JSON {"id","number","price"} -> its offset in the option

  ARGV[1] optionId
  ARGV[2] date (ISO 8601)
  ARGV[3] concert name (set when the concert is new)
  ARGV[4] version: a fresh random string, so that a cached seat list can tell it is current
  ARGV[5..] per seat, in listing order: seatId, number, priceMinor, seatJson

  Returns
    {0, 1}   created
    {0, 0}   the option already existed (nothing changed)
]]
local concert, options, free, layout, seats, view =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local option, date, name, version = ARGV[1], ARGV[2], ARGV[3], ARGV[4]

redis.call('HSETNX', concert, 'name', name)
if redis.call('HEXISTS', options, option) == 1 then return {0, 0} end

local count = (#ARGV - 4) / 4
local start = redis.call('HINCRBY', concert, 'nbits', count) - count
for i = 0, count - 1 do
  local seat, number, price, json = ARGV[5 + 4 * i], ARGV[6 + 4 * i], ARGV[7 + 4 * i],
                                     ARGV[8 + 4 * i]
  redis.call('HSET', seats, seat, number .. ':' .. price .. ':' .. (start + i))
  redis.call('ZADD', view, i, json)
end
redis.call('HSET', options, option, date)
redis.call('HSET', free, option, count)
redis.call('HSET', layout, option, start .. ':' .. count .. ':' .. version)
return {0, 1}
