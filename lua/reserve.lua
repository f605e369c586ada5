#!lua
--[[
  Hold a seat for the customer of an ACTIVE token, for the hold TTL. Of any number of
  concurrent holds of one seat exactly one wins. Releases expired holds first.

  KEYS[1]  tokens   hash  customerId -> secret (ACTIVE) or "secret:lastPollMs" (WAITING)
  KEYS[2]  active   zset  customerId -> ACTIVE token expiry (ms)
  KEYS[3]  options  hash  optionId -> date
  KEYS[4]  seats    hash  seatId -> "number:price:index" of this option (price in minor units)
  KEYS[5]  taken    bits  seat index -> 1 while the seat is held or sold
  KEYS[6]  free     hash  optionId -> free seats
  KEYS[7]  holds    zset  reservation id -> hold expiry (ms)
  KEYS[8]  res      hash  reservation id -> JSON record
  KEYS[9]  held     hash  customerId -> open holds under the current token
  KEYS[10] gone     zset  closed reservation id -> closed at (ms)

  ARGV[1] customerId (from the token)
  ARGV[2] token secret
  ARGV[3] waiting idle limit (ms)
  ARGV[4] optionId
  ARGV[5] seatId
  ARGV[6] new reservation id (32 hex chars)
  ARGV[7] hold TTL (ms)

  Returns
    {0, priceMinor, expiresAtMs}
    {1} token unknown/expired   {2} token WAITING   {4} no such option in this concert
    {5} no such seat in this option   {6} seat held or sold
]]
local tokens, active, options, seats = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local taken, free, holds, res, held, gone = KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10]
local customer, secret, idle_ms = ARGV[1], ARGV[2], tonumber(ARGV[3])
local option, seat, id, hold_ms = ARGV[4], ARGV[5], ARGV[6], tonumber(ARGV[7])
local SWEEP = 100

-- @include clock

-- @include token_state

-- @include release

local state = token_state()
if state ~= 0 then return {state} end
local entry = redis.call('HGET', seats, seat)
if not entry then  -- only now tell an unknown option from an unknown seat: one call less
  if redis.call('HEXISTS', options, option) == 0 then return {4} end
  return {5}
end

release_due(SWEEP)

local price, index = string.match(entry, '^%d+:(%d+):(%d+)$')
if redis.call('SETBIT', taken, index, 1) == 1 then return {6} end
price = tonumber(price)
local expires = now + hold_ms
redis.call('HSET', res, id, cjson.encode({
  customer = customer, option = option, seat = seat, idx = tonumber(index), price = price,
  status = 'HELD', token = secret, expires = expires, attempt = 0,
}))
redis.call('ZADD', holds, expires, id)
redis.call('HINCRBY', free, option, -1)
redis.call('HINCRBY', held, customer, 1)
return {0, price, expires}
