#!lua flags=allow-oom
--[[
  Available dates of a concert: each option (performance) with its date and free seats.
  Releases expired holds first, so the counts are current.

  Flag allow-oom: it only releases expired holds, and reads must keep working when Redis is full.

  KEYS[1] tokens   hash  customerId -> "<seq>" (WAITING) or "<seq>@<activeUntilMs>"
  KEYS[2] active   zset  customerId -> ACTIVE token expiry (ms)
  KEYS[3] options  hash  optionId -> date
  KEYS[4] free     hash  optionId -> free seats
  KEYS[5] holds    zset  reservation id -> hold expiry (ms)
  KEYS[6] res      hash  reservation id -> JSON record
  KEYS[7] taken    bits  seat index -> 1 while the seat is held or sold
  KEYS[8] gone     zset  closed reservation id -> closed at (ms)
  KEYS[9] settings hash  the concert's settings (include/settings.lua)
  KEYS[10] tickets  hash  customerId -> ticket record (include/tickets.lua)
  KEYS[11] events   stream the concert's events
  KEYS[12] concert   hash  live: the waiters (a seat that comes back while some wait is put
                           on offer to them)
  KEYS[13] offers    zset  seat index -> when it came back (include/offers.lua)

  ARGV[1] customerId (from the token)
  ARGV[2] the token's seq (its place in the queue; the engine checked its mac)
  ARGV[3] default waiting idle limit (ms)
  ARGV[4] 1 when the concert asked for is the token's concert, else 0
  ARGV[5] events kept in the stream (about)
  ARGV[6] default time a returned seat is on offer to the queue (ms)

  Returns
    {0, datesJson}   a JSON array, by date:
                     [{"concertOptionId":..,"date":"..","availableSeats":..}, ...]
    {1} token unknown/expired   {2} token WAITING   {3} not the token's concert
]]
-- @include clock
-- @include settings
-- @include token_state
-- @include events
-- @include release

local k = {tokens = KEYS[1], active = KEYS[2], options = KEYS[3], free = KEYS[4],
           holds = KEYS[5], res = KEYS[6], taken = KEYS[7], gone = KEYS[8], settings = KEYS[9],
           tickets = KEYS[10], events = KEYS[11], concert = KEYS[12], offers = KEYS[13]}
local customer, token = ARGV[1], ARGV[2]
local same_concert, events_max = ARGV[4] == '1', tonumber(ARGV[5])
local SWEEP = 100
local now = time_ms()
local cfg = configured(k.settings, {idleMs = tonumber(ARGV[3]), returnHoldMs = tonumber(ARGV[6])})

local state = token_state(k, customer, tonumber(token), now)
if state ~= 0 then return {state} end
if not same_concert then return {3} end

release_due(k, now, event_stream(k.events, events_max, now), SWEEP, cfg.returnHoldMs)

local dates = redis.call('HGETALL', k.options)
local ids = {}
for i = 1, #dates, 2 do ids[#ids + 1] = dates[i] end
local counts = #ids > 0 and redis.call('HMGET', k.free, unpack(ids)) or {}
local rows = {}
for i = 1, #ids do
  rows[i] = {dates[2 * i], tonumber(ids[i]), '{"concertOptionId":' .. ids[i] .. ',"date":' ..
             cjson.encode(dates[2 * i]) .. ',"availableSeats":' .. (counts[i] or '0') .. '}'}
end
table.sort(rows, function(a, b) return a[1] < b[1] or (a[1] == b[1] and a[2] < b[2]) end)
local items = {}
for i = 1, #rows do items[i] = rows[i][3] end
return {0, '[' .. table.concat(items, ',') .. ']'}
