#!lua
--[[
  Pay, step 1 of 3 (concert side): lock a HELD reservation for payment by marking it PAYING.
  A PAYING hold never expires; step 3 (pay_finish.lua) marks it PAID or returns it to HELD.
  Of concurrent pays of one reservation exactly one gets past this step.

  KEYS[1] tokens   hash  customerId -> secret (ACTIVE) or "secret:lastPollMs" (WAITING)
  KEYS[2] active   zset  customerId -> ACTIVE token expiry (ms)
  KEYS[3] res      hash  reservation id -> JSON record
  KEYS[4] holds    zset  reservation id -> hold expiry (ms)
  KEYS[5] paying   zset  reservation id -> pay start (ms)
  KEYS[6] taken    bits  seat index -> 1 while the seat is held or sold
  KEYS[7] free     hash  optionId -> free seats
  KEYS[8] held     hash  customerId -> open holds under the current token
  KEYS[9] gone     zset  closed reservation id -> closed at (ms)

  ARGV[1] customerId (from the token)
  ARGV[2] token secret
  ARGV[3] waiting idle limit (ms)
  ARGV[4] reservation id (32 hex chars)
  ARGV[5] a pay in PAYING this long is stale: its payer crashed (ms)

  Returns
    {0, priceMinor, attempt}   now PAYING under this attempt number
    {14, attempt}              a stale PAYING attempt: finish it (recovery), then call again
    {1} token unknown/expired   {2} token WAITING   {7} no such reservation of this customer
    {8} already paid   {9} hold expired   {10} another pay is in progress   {15} cancelled
]]
local tokens, active, res, holds = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local paying, taken, free, held, gone = KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9]
local customer, secret, idle_ms = ARGV[1], ARGV[2], tonumber(ARGV[3])
local id, stale_ms = ARGV[4], tonumber(ARGV[5])

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

-- 0 ACTIVE, 1 unknown/expired/idle/finished, 2 WAITING. A token's entry is its secret
-- (32 hex) when ACTIVE, "secret:lastPollMs" when WAITING. (The same lines stand in every
-- script that needs an ACTIVE token.)
local function token_state()
  local entry = redis.call('HGET', tokens, customer)
  if not entry or string.sub(entry, 1, 32) ~= secret then return 1 end
  if #entry == 32 then
    local active_until = tonumber(redis.call('ZSCORE', active, customer))
    if active_until and active_until > now then return 0 end
    return 1
  end
  if tonumber(string.sub(entry, 34)) > now - idle_ms then return 2 end
  return 1
end

-- Release a hold: free its seat, close the reservation, uncount it from the token it was made
-- under. (The same lines stand in every script that releases holds.)
local function release(id, rec, status)
  redis.call('SETBIT', taken, rec.idx, 0)
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
local raw = redis.call('HGET', res, id)
if not raw then return {7} end
local rec = cjson.decode(raw)
if rec.customer ~= customer then return {7} end
if rec.status == 'PAID' then return {8} end
if rec.status == 'EXPIRED' then return {9} end
if rec.status == 'CANCELLED' then return {15} end
if rec.status == 'PAYING' then
  if tonumber(redis.call('ZSCORE', paying, id) or now) <= now - stale_ms then
    return {14, rec.attempt}
  end
  return {10}
end
if rec.expires <= now then
  release(id, rec, 'EXPIRED')
  return {9}
end
rec.status = 'PAYING'
rec.attempt = rec.attempt + 1
redis.call('HSET', res, id, cjson.encode(rec))
redis.call('ZREM', holds, id)
redis.call('ZADD', paying, now, id)
return {0, rec.price, rec.attempt}
