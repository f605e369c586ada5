#!lua
--[[
  Create a concert option (a dated performance) with its seats, unless it exists: loading a
  catalogue again never touches an option, hold or sale that is already there. The seats come
  in chunks (a 100,000-seat venue is many calls, each bounded); the option's seats get
  consecutive places in the concert's taken-seat bitmap, in listing order, reserved by the
  first chunk; the option appears (dates, seats, free count) only with its last chunk, so a
  load cut short is invisible and the next load finishes it.

  Invariant the seat list relies on (engine/catalog.py): the view's i-th member by score is the
  seat at bitmap place start + i. The score is that offset i itself, never a seat number
  (numbers repeat per row or section, and ties would sort by text, not by place).

  KEYS[1] concert  hash  name, nbits (bitmap places handed out so far), seats (on sale in all:
                         the stock admission is sized to; admit.lua counts a concert that
                         has options but no seats field once)
  KEYS[2] options  hash  optionId -> date
  KEYS[3] free     hash  optionId -> free seats
  KEYS[4] layout   hash  optionId -> "start:count:version" of its seats in the bitmap;
                         "pending:<optionId>" the same while its chunks are written
  KEYS[5] seats    hash  seatId -> "number:price:index" (price in minor units)
  KEYS[6] seatview zset  the seat as JSON {"id","number","price","section","row"} -> offset

  ARGV[1] optionId
  ARGV[2] date (RFC 3339)
  ARGV[3] concert name
  ARGV[4] version: a fresh random string, so that a cached seat list can tell it is current
  ARGV[5] seats of the option in all
  ARGV[6] offset of this chunk's first seat in the listing
  ARGV[7..] per seat of the chunk, in listing order: seatId, number, priceMinor, seatJson

  Returns
    {0, 1}   created (this was the last chunk)
    {0, 2}   a chunk written, more to come
    {0, 0}   the option already existed (nothing changed)
    {26}     a load with another seat count is under way for this option
]]
local concert, options, free, layout, seats, seatview =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local option, date, name, version = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local total, first = tonumber(ARGV[5]), tonumber(ARGV[6])

redis.call('HSET', concert, 'name', name)
if redis.call('HEXISTS', options, option) == 1 then return {0, 0} end

local pending = redis.call('HGET', layout, 'pending:' .. option)
local start
if pending then
  local s, count, v = string.match(pending, '^(%d+):(%d+):(%w+)$')
  if tonumber(count) ~= total then return {26} end
  start, version = tonumber(s), v
else
  start = redis.call('HINCRBY', concert, 'nbits', total) - total
  redis.call('HSET', layout, 'pending:' .. option, start .. ':' .. total .. ':' .. version)
end

local n = (#ARGV - 6) / 4
for i = 0, n - 1 do
  local seat, number, price, json = ARGV[7 + 4 * i], ARGV[8 + 4 * i], ARGV[9 + 4 * i],
                                     ARGV[10 + 4 * i]
  redis.call('HSET', seats, seat, number .. ':' .. price .. ':' .. (start + first + i))
  redis.call('ZADD', seatview, first + i, json)
end
if first + n < total then return {0, 2} end
if redis.call('HEXISTS', concert, 'seats') == 1 then
  redis.call('HINCRBY', concert, 'seats', total)
elseif redis.call('HLEN', options) == 0 then
  redis.call('HSET', concert, 'seats', total)
end
redis.call('HSET', options, option, date)
redis.call('HSET', free, option, total)
redis.call('HSET', layout, option, start .. ':' .. total .. ':' .. version)
redis.call('HDEL', layout, 'pending:' .. option)
return {0, 1}
