#!lua
--[[
  Available seats of one concert option: the seats neither held nor sold.
  Releases expired holds first, so a seat whose hold ran out is offered again.

  KEYS[1]  tokens   hash  customerId -> token secret
  KEYS[2]  active   zset  customerId -> ACTIVE token expiry (ms)
  KEYS[3]  seen     zset  customerId -> last poll of a WAITING token (ms)
  KEYS[4]  options  hash  optionId -> date
  KEYS[5]  seats    hash  seatId -> "number:price" of this option (price in minor units)
  KEYS[6]  holds    zset  reservation id -> hold expiry (ms)
  KEYS[7]  res      hash  reservation id -> JSON record
  KEYS[8]  taken    hash  seatId -> reservation id
  KEYS[9]  free     hash  optionId -> free seats
  KEYS[10] held     hash  customerId -> open holds under the current token
  KEYS[11] gone     zset  closed reservation id -> closed at (ms)

  ARGV[1] customerId (from the token)
  ARGV[2] token secret
  ARGV[3] waiting idle limit (ms)
  ARGV[4] optionId

  Returns
    {0, seatId, number, priceMinor, seatId, number, priceMinor, ...}
    {1} token unknown/expired   {2} token WAITING   {4} no such option in this concert
]]
local tokens, active, seen, options, seats = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local holds, res, taken, free, held, gone = KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10], KEYS[11]
local customer, secret, idle_ms, option = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local SWEEP = 100

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

-- 0 ACTIVE, 1 unknown/expired/idle/finished, 2 WAITING. (The same lines stand in every
-- script that needs an ACTIVE token.)
local function token_state()
  if redis.call('HGET', tokens, customer) ~= secret then return 1 end
  local active_until = tonumber(redis.call('ZSCORE', active, customer))
  if active_until then
    if active_until > now then return 0 end
    return 1
  end
  local seen_at = tonumber(redis.call('ZSCORE', seen, customer))
  if seen_at and seen_at > now - idle_ms then return 2 end
  return 1
end

-- Release a hold: free its seat, close the reservation, uncount it from the token it was made
-- under. (The same lines stand in every script that releases holds.)
local function release(id, rec, status)
  redis.call('HDEL', taken, rec.seat)
  redis.call('HINCRBY', free, rec.option, 1)
  redis.call('ZREM', holds, id)
  rec.status = status
  redis.call('HSET', res, id, cjson.encode(rec))
  redis.call('ZADD', gone, now, id)
  if redis.call('HGET', tokens, rec.customer) == rec.token then
    redis.call('HINCRBY', held, rec.customer, -1)
  end
end

local state = token_state()
if state ~= 0 then return {state} end
if redis.call('HEXISTS', options, option) == 0 then return {4} end

local due = redis.call('ZRANGEBYSCORE', holds, '-inf', now, 'LIMIT', 0, SWEEP)
for i = 1, #due do
  release(due[i], cjson.decode(redis.call('HGET', res, due[i])), 'EXPIRED')
end

local catalog = redis.call('HGETALL', seats)
local out = {0}
for i = 1, #catalog, 2 do
  if redis.call('HEXISTS', taken, catalog[i]) == 0 then
    local number, price = string.match(catalog[i + 1], '^(%d+):(%d+)$')
    out[#out + 1] = catalog[i]
    out[#out + 1] = tonumber(number)
    out[#out + 1] = tonumber(price)
  end
end
return out
