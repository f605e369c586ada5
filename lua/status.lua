#!lua flags=allow-oom
--[[
  Poll a queue token: keep a WAITING token in the queue (it leaves after the idle limit without
  polls), admit from the head while the concert has room, and tell where the token stands.

  Flag allow-oom: it only moves tokens along the queue, and a poll must keep working when Redis is full.

  KEYS[1] tokens    hash  customerId -> secret (ACTIVE) or "secret:lastPollMs" (WAITING)
  KEYS[2] waiting   zset  customerId -> queue ticket (FIFO)
  KEYS[3] active    zset  customerId -> ACTIVE token expiry (ms)
  KEYS[4] held      hash  customerId -> open holds under the current token
  KEYS[5] rate      hash  sec, n, avg: admissions (see admissions()); cursor: the idle sweep

  ARGV[1] customerId
  ARGV[2] token secret (32 hex chars)
  ARGV[3] active limit        (tokens ACTIVE at once)
  ARGV[4] admissions a second
  ARGV[5] active TTL (ms)
  ARGV[6] waiting idle limit (ms)

  Returns
    {0, 1, 0, 0, expiresAtMs}                 ACTIVE
    {0, 0, position, estimatedWaitSeconds, 0}  WAITING (position is 1-based)
    {1}                                        unknown, expired, idle or finished token
]]
local tokens, waiting, active, held, rate = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local customer, secret = ARGV[1], ARGV[2]
local limit, per_second = tonumber(ARGV[3]), tonumber(ARGV[4])
local ttl_ms, idle_ms = tonumber(ARGV[5]), tonumber(ARGV[6])

-- @include clock

-- @include admission

local entry = redis.call('HGET', tokens, customer)
if not entry or string.sub(entry, 1, 32) ~= secret then return {1} end
if #entry == 32 then  -- ACTIVE: the entry is the bare secret
  local active_until = tonumber(redis.call('ZSCORE', active, customer))
  if active_until and active_until > now then return {0, 1, 0, 0, active_until} end
  return {1}
end
if tonumber(string.sub(entry, 34)) <= now - idle_ms then
  redis.call('ZREM', waiting, customer)
  redis.call('HDEL', tokens, customer)
  redis.call('HDEL', held, customer)
  return {1}
end
redis.call('HSET', tokens, customer, secret .. ':' .. now)

admit()
local active_until = tonumber(redis.call('ZSCORE', active, customer))
if active_until then return {0, 1, 0, 0, active_until} end
local position = redis.call('ZRANK', waiting, customer) + 1
return {0, 0, position, estimate(position), 0}
