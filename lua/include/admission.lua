--[[ include: admission from the queue, by the concert's settings (cfg, include settings).
  admissions() -> second, admitted this second, avg: the rate hash keeps sec (the second of the
  latest admissions), n (how many in it) and avg (admissions a second, a minute's moving
  average). admit() -> how many it admitted: none while paused or before opensAt; FIFO from
  the head, or with queueing 1 ("random") a uniform draw from everyone waiting each time.
  standing(customer) -> state, position, wait, poll of a WAITING token: state 0 in the queue
  (position 1-based: its rank, or in random mode the expected rank (n + 1) / 2), state 2 in
  the pre-queue before the opening (position -1, wait: seconds to the opening); poll: the
  seconds after which to poll again (at most 30, a quarter of the wait and a third of the
  idle limit; drawn from the top fifth below that).
  needs locals: tokens, waiting, active, rate, events, events_max, cfg, seed, now
  and the includes events, token_entry ]]
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

-- Park-Miller, seeded per call with a secure random number from the engine: for the random
-- draws of queueing "random" (exact in doubles: 16807 * 2^31 < 2^53).
local prng = tonumber(seed) % 2147483646 + 1
local function rand()
  prng = (prng * 16807) % 2147483647
  return prng / 2147483647
end

local function next_waiter()
  if cfg.queueing == 1 then
    local n = redis.call('ZCARD', waiting)
    if n == 0 then return nil end
    local at = math.floor(rand() * n)
    local pick = redis.call('ZRANGE', waiting, at, at)[1]
    redis.call('ZREM', waiting, pick)
    return pick
  end
  return redis.call('ZPOPMIN', waiting)[1]
end

-- Admit: at most the free ACTIVE slots and this second's remaining admissions; a waiter that
-- went idle leaves instead of taking a slot.
local function admit()
  if cfg.paused == 1 or now < cfg.opensAt then return 0 end
  local second, admitted, avg = admissions()
  local room = math.min(cfg.activeLimit - redis.call('ZCOUNT', active, '(' .. now, '+inf'),
                        cfg.admitPerSecond - admitted)
  local n, tries = 0, 0
  while n < room and tries < room + 100 do
    tries = tries + 1
    local head = next_waiter()
    if not head then break end
    local kind, secret_of, polled = entry_of(redis.call('HGET', tokens, head), head)
    if kind == 'W' and polled > now - cfg.idleMs then
      local active_until = now + cfg.activeTtlMs
      redis.call('HSET', tokens, head, secret_of .. '@' .. active_until)
      redis.call('ZADD', active, active_until, head)
      n = n + 1
    else
      redis.call('HDEL', tokens, head)
    end
  end
  if n > 0 then
    redis.call('HSET', rate, 'sec', second, 'n', admitted + n, 'avg', avg)
    emit('ADMITTED', '', '', '', n)
  end
  return n
end

-- Seconds until a waiter at this position is admitted, at the last minute's admission rate
-- (or this second's, when higher: right after a drop starts), floored at one a second.
local function estimate(position)
  local _, n, avg = admissions()
  return math.ceil(position / math.max(avg, n, 1))
end

local function standing(customer)
  local state, position, wait = 0, -1, 0
  if now < cfg.opensAt then
    state, wait = 2, math.ceil((cfg.opensAt - now) / 1000)
  else
    if cfg.queueing == 1 then
      position = math.ceil((redis.call('ZCARD', waiting) + 1) / 2)
    else
      position = redis.call('ZRANK', waiting, customer) + 1
    end
    wait = estimate(position)
  end
  -- The next poll: a quarter of the wait, at most 30 s and a third of the idle limit (a poll
  -- keeps the token in the queue), at least 1 s; so that a surge of pollers slows itself.
  -- Drawn from the top fifth below that bound, so that pollers told alike at one moment (at
  -- the opening, say) drift apart instead of polling in waves.
  local most = math.max(1, math.min(30, math.floor(cfg.idleMs / 3000), math.ceil(wait / 4)))
  local poll = most - math.floor(rand() * math.floor(most / 5 + 1))
  return state, position, wait, poll
end
