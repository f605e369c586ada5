#!lua
--[[
  Change the prices of seats of existing options (a catalogue reloaded with new prices), all
  or nothing: every changed seat must be neither held nor sold, else nothing changes and the
  taken ones are named. A repriced option gets a new version, so that every worker reads its
  seat list again. Holds made before keep the price they were made at.

  KEYS[1] layout   hash  optionId -> "start:count:version" of its seats in the bitmap
  KEYS[2] taken    bits  seat index -> 1 while the seat is held or sold
  KEYS[3..] per option changed: its seats hash (seatId -> "number:price:index") and its view
           zset (seat JSON -> offset)

  ARGV[1..] per option, in the order of its keys: optionId, new version, n, then n times:
           seatId, offset in the option's listing, new priceMinor, new seatJson

  Returns
    {0, seatsChanged}
    {27, seatId, ...}   held or sold seats among them (at most 20): nothing changed
    {4, optionId}       no such option
]]
local layout, taken = KEYS[1], KEYS[2]

local plan, a, k = {}, 1, 3
while a <= #ARGV do
  local option, version, n = ARGV[a], ARGV[a + 1], tonumber(ARGV[a + 2])
  local slice = redis.call('HGET', layout, option)
  if not slice then return {4, option} end
  local start, count = string.match(slice, '^(%d+):(%d+):')
  plan[#plan + 1] = {option = option, version = version, start = tonumber(start),
                     count = count, seats = KEYS[k], view = KEYS[k + 1], first = a + 3, n = n}
  a, k = a + 3 + 4 * n, k + 2
end

local busy = {}
for _, p in ipairs(plan) do
  for i = 0, p.n - 1 do
    local at = p.first + 4 * i
    if redis.call('GETBIT', taken, p.start + tonumber(ARGV[at + 1])) == 1 and #busy < 20 then
      busy[#busy + 1] = ARGV[at]
    end
  end
end
if #busy > 0 then return {27, unpack(busy)} end

local changed = 0
for _, p in ipairs(plan) do
  for i = 0, p.n - 1 do
    local at = p.first + 4 * i
    local seat, offset, price, json = ARGV[at], ARGV[at + 1], ARGV[at + 2], ARGV[at + 3]
    local number, _, index = string.match(redis.call('HGET', p.seats, seat),
                                          '^(%d+):(%d+):(%d+)$')
    redis.call('HSET', p.seats, seat, number .. ':' .. price .. ':' .. index)
    redis.call('ZREMRANGEBYSCORE', p.view, offset, offset)
    redis.call('ZADD', p.view, offset, json)
    changed = changed + 1
  end
  redis.call('HSET', layout, p.option, p.start .. ':' .. p.count .. ':' .. p.version)
end
return {0, changed}
