#!lua flags=allow-oom
--[[
  The background tick of one concert (the API runs it about once a second): drop expired
  ACTIVE tokens and idle WAITING ones (a slice of the queue a tick), release expired holds, purge long-closed reservations,
  admit from the queue, and list pays stuck in PAYING for the engine to finish.
  Every step is bounded, so one tick never blocks Redis for long.

  Flag allow-oom: its sweeps are what frees memory, so they must run when Redis is full.

  KEYS[1]  tokens   hash  customerId -> secret (ACTIVE) or "secret:lastPollMs" (WAITING)
  KEYS[2]  waiting  zset  customerId -> queue ticket (FIFO)
  KEYS[3]  active   zset  customerId -> ACTIVE token expiry (ms)
  KEYS[4]  held     hash  customerId -> open holds under the current token
  KEYS[5]  rate     hash  sec, n, avg: admissions (see admissions()); cursor: the idle sweep
  KEYS[6]  holds    zset  reservation id -> hold expiry (ms)
  KEYS[7]  paying   zset  reservation id -> pay start (ms)
  KEYS[8]  res      hash  reservation id -> JSON record
  KEYS[9]  taken    bits  seat index -> 1 while the seat is held or sold
  KEYS[10] free     hash  optionId -> free seats
  KEYS[11] gone     zset  closed reservation id -> closed at (ms)

  ARGV[1] active limit        (tokens ACTIVE at once)
  ARGV[2] admissions a second
  ARGV[3] active TTL (ms)
  ARGV[4] waiting idle limit (ms)
  ARGV[5] a pay in PAYING this long is stale (ms)
  ARGV[6] keep expired/cancelled reservations this long (ms), so a late pay gets 409

  Returns
    {0, admitted, tokensDropped, holdsReleased, {reservationId, customerId, attempt, ...}}
    the last element lists stale pays (at most 100)
]]
local tokens, waiting, active, held, rate = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local holds, paying, res, taken, free, gone = KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10], KEYS[11]
local limit, per_second = tonumber(ARGV[1]), tonumber(ARGV[2])
local ttl_ms, idle_ms = tonumber(ARGV[3]), tonumber(ARGV[4])
local stale_ms, keep_ms = tonumber(ARGV[5]), tonumber(ARGV[6])
local SWEEP = 1000

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

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

local dropped = 0
for _, customer in ipairs(redis.call('ZRANGEBYSCORE', active, '-inf', now, 'LIMIT', 0, SWEEP)) do
  redis.call('ZREM', active, customer)
  redis.call('HDEL', tokens, customer)
  redis.call('HDEL', held, customer)
  dropped = dropped + 1
end
-- Idle WAITING tokens: walk the queue a slice a tick from a cursor (their last poll lives in
-- their token entry, which saves an index of ~100 bytes a waiter), dropping the idle ones.
local cursor = tonumber(redis.call('HGET', rate, 'cursor') or '0')
local slice = redis.call('ZRANGE', waiting, cursor, cursor + SWEEP - 1)
if #slice == 0 then
  cursor = 0
else
  local entries = redis.call('HMGET', tokens, unpack(slice))
  for i = 1, #slice do
    local entry = entries[i]
    if not entry or #entry == 32 or tonumber(string.sub(entry, 34)) <= now - idle_ms then
      redis.call('ZREM', waiting, slice[i])
      if entry and #entry > 32 then redis.call('HDEL', tokens, slice[i]) end
      redis.call('HDEL', held, slice[i])
      dropped = dropped + 1
    else
      cursor = cursor + 1
    end
  end
  if #slice < SWEEP then cursor = 0 end
end
redis.call('HSET', rate, 'cursor', cursor)

local due = redis.call('ZRANGEBYSCORE', holds, '-inf', now, 'LIMIT', 0, SWEEP)
for i = 1, #due do
  release(due[i], cjson.decode(redis.call('HGET', res, due[i])), 'EXPIRED')
end

for _, id in ipairs(redis.call('ZRANGEBYSCORE', gone, '-inf', now - keep_ms, 'LIMIT', 0, SWEEP)) do
  redis.call('HDEL', res, id)
  redis.call('ZREM', gone, id)
end

local admitted = admit()

local stale = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', paying, '-inf', now - stale_ms, 'LIMIT', 0, 100)) do
  local rec = cjson.decode(redis.call('HGET', res, id))
  stale[#stale + 1] = id
  stale[#stale + 1] = rec.customer
  stale[#stale + 1] = rec.attempt
end
return {0, admitted, dropped, #due, stale}
