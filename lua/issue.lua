#!lua
--[[
  Issue a queue token: return the customer's live token for this concert, or put a new one at
  the end of the queue. Then admit from the head of the queue while the concert has room.

  KEYS[1] concert   hash  {c:C}:concert  (must exist; field seq numbers the queue)
  KEYS[2] tokens    hash  customerId -> secret (ACTIVE) or "secret:lastPollMs" (WAITING)
  KEYS[3] waiting   zset  customerId -> queue ticket (FIFO)
  KEYS[4] active    zset  customerId -> ACTIVE token expiry (ms)
  KEYS[5] held      hash  customerId -> open holds under the current token
  KEYS[6] rate      hash  sec, n, avg: admissions (see admissions()); cursor: the idle sweep

  ARGV[1] customerId
  ARGV[2] secret for a new token (32 hex chars; unused when a live token exists)
  ARGV[3] active limit        (tokens ACTIVE at once)
  ARGV[4] admissions a second
  ARGV[5] active TTL (ms)
  ARGV[6] waiting idle limit (ms)

  Returns
    {0, secret, 1, 0, 0, expiresAtMs}                 ACTIVE
    {0, secret, 0, position, estimatedWaitSeconds, 0}  WAITING (position is 1-based)
    {3}                                                no such concert
]]
local concert, tokens, waiting, active, held, rate =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local customer, fresh = ARGV[1], ARGV[2]
local limit, per_second = tonumber(ARGV[3]), tonumber(ARGV[4])
local ttl_ms, idle_ms = tonumber(ARGV[5]), tonumber(ARGV[6])

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

if redis.call('EXISTS', concert) == 0 then return {3} end

-- Admission bookkeeping in the rate hash: sec = the second of the latest admissions, n = how
-- many in that second, avg = admissions a second, a moving average over about a minute.
local DECAY = math.exp(-1 / 60)
local function admissions()
  local second = math.floor(now / 1000)
  local mark = redis.call('HMGET', rate, 'sec', 'n', 'avg')
  local sec, n, avg = tonumber(mark[1]) or second, tonumber(mark[2]) or 0, tonumber(mark[3]) or 0
  if sec < second then
    avg = avg * DECAY ^ (second - sec) + n * (1 - DECAY) * DECAY ^ (second - sec - 1)
    n = 0
  end
  return second, n, avg
end

-- Admit from the head of the queue: at most the free ACTIVE slots and this second's remaining
-- admissions; a head that went idle leaves instead of taking a slot.
local function admit()
  local second, admitted, avg = admissions()
  local room = math.min(limit - redis.call('ZCOUNT', active, '(' .. now, '+inf'),
                        per_second - admitted)
  local n, tries = 0, 0
  while n < room and tries < room + 100 do
    tries = tries + 1
    local head = redis.call('ZPOPMIN', waiting)[1]
    if not head then break end
    local entry = redis.call('HGET', tokens, head)
    if entry and #entry > 32 and tonumber(string.sub(entry, 34)) > now - idle_ms then
      redis.call('HSET', tokens, head, string.sub(entry, 1, 32))  -- the bare secret: ACTIVE
      redis.call('ZADD', active, now + ttl_ms, head)
      n = n + 1
    else
      redis.call('HDEL', tokens, head)
    end
  end
  if n > 0 then redis.call('HSET', rate, 'sec', second, 'n', admitted + n, 'avg', avg) end
  return n
end

-- Seconds until a waiter at this position is admitted, at the last minute's admission rate
-- (or this second's, when higher: right after a drop starts), floored at one a second.
local function estimate(position)
  local _, n, avg = admissions()
  return math.ceil(position / math.max(avg, n, 1))
end

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
