#!lua
--[[
  Issue a queue token: return the customer's live token for this concert, or put a new one at
  the end of the queue. Then admit from the head of the queue while the concert has room. A
  queue at its cap takes no one new (the memory of a concert's queue is bounded) and writes
  nothing.

  KEYS[1] concert   hash  {c:C}:concert  (must exist; field seq numbers the queue)
  KEYS[2] tokens    hash  customerId -> secret (ACTIVE) or "secret:lastPollMs" (WAITING)
  KEYS[3] waiting   zset  customerId -> queue ticket (FIFO)
  KEYS[4] active    zset  customerId -> ACTIVE token expiry (ms)
  KEYS[5] held      hash  customerId -> open holds under the current token
  KEYS[6] rate      hash  sec, n, avg: admissions (see include/admission.lua)

  ARGV[1] customerId
  ARGV[2] secret for a new token (32 hex chars; unused when a live token exists)
  ARGV[3] active limit        (tokens ACTIVE at once)
  ARGV[4] admissions a second
  ARGV[5] active TTL (ms)
  ARGV[6] waiting idle limit (ms)
  ARGV[7] most tokens WAITING at once (the queue's cap)

  Returns
    {0, secret, 1, 0, 0, expiresAtMs}                 ACTIVE
    {0, secret, 0, position, estimatedWaitSeconds, 0}  WAITING (position is 1-based)
    {3}                                                no such concert
    {19}                                               the queue is full (nothing written)
]]
local concert, tokens, waiting, active, held, rate =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local customer, fresh = ARGV[1], ARGV[2]
local limit, per_second = tonumber(ARGV[3]), tonumber(ARGV[4])
local ttl_ms, idle_ms, max_waiting = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])

-- @include clock

if redis.call('EXISTS', concert) == 0 then return {3} end

-- @include admission

-- A token of this customer that expired or went idle is dropped; a live one is kept (and a
-- WAITING one counts as polled). The entry is the secret (ACTIVE) or "secret:lastPollMs".
local entry = redis.call('HGET', tokens, customer)
local secret = entry and string.sub(entry, 1, 32)
if entry and #entry == 32 then
  local active_until = tonumber(redis.call('ZSCORE', active, customer))
  if active_until and active_until > now then return {0, secret, 1, 0, 0, active_until} end
  secret = nil
elseif entry and tonumber(string.sub(entry, 34)) > now - idle_ms then
  redis.call('HSET', tokens, customer, secret .. ':' .. now)
else
  secret = nil
end
if not secret then
  if redis.call('ZCARD', waiting) >= max_waiting then return {19} end
  if entry then  -- the old token's traces
    redis.call('ZREM', active, customer)
    redis.call('ZREM', waiting, customer)
    redis.call('HDEL', held, customer)
  end
  secret = fresh
  redis.call('HSET', tokens, customer, secret .. ':' .. now)
  redis.call('ZADD', waiting, redis.call('HINCRBY', concert, 'seq', 1), customer)
end

admit()
local active_until = tonumber(redis.call('ZSCORE', active, customer))
if active_until then return {0, secret, 1, 0, 0, active_until} end
local position = redis.call('ZRANK', waiting, customer) + 1
return {0, secret, 0, position, estimate(position), 0}
