--[[ include: admission from the queue.
  admissions() -> second, admitted this second, avg: the rate hash keeps sec (the second of the
  latest admissions), n (how many in it) and avg (admissions a second, a minute's moving
  average). admit() -> how many it admitted. estimate(position) -> seconds to wait.
  needs locals: tokens, waiting, active, rate, limit, per_second, ttl_ms, idle_ms, now ]]
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
