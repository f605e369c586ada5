--[[ include: queue_of(k, cfg, now, seed, stream) -> the concert's queue, by its settings cfg
  (include/settings: activeLimit, admitPerSecond, admitPerSeat, returnHoldMs, activeTtlMs,
  idleMs, paused, opensAt, queueing), its keys k (tokens, waiting, active, rate, concert,
  offers) and its event stream (include/events); seed: a secure random number from the
  engine for random-mode draws.
    q.admissions() -> second, admitted this second, avg, soldOut: the rate hash keeps sec
      (the second of the latest admissions), n (how many in it), avg (admissions a second, a
      minute's moving average) and soldOut (since when the concert is sold out, set by the
      tick); read once a call.
    q.admit(who) -> n, until, popped: how many it admitted, when `who` was one of them its
      expiry, and how many it took off the queue (admitted or idle). None while paused,
      before opensAt or sold out; at most the active limit's room, this second's admissions
      left, and admitPerSeat ACTIVE tokens a seat still free or held (seats - sold: never
      more shoppers than can still buy), plus one for each seat on offer that has not
      admitted its waiter yet (rate.credited). FIFO from the head, or with queueing 1
      ("random") a uniform draw from everyone waiting each time.
    q.standing(customer, known) -> state, position, wait, poll of a WAITING token: state 0
      in the queue, 3 the same while the concert is sold out (the queue is its waitlist)
      (position 1-based: `known` when the caller knows it, else its rank; in random mode the
      expected rank (n + 1) / 2), state 2 in the pre-queue before the opening (position -1,
      wait: seconds to the opening); wait -1 while paused (no estimate: nobody is admitted);
      poll: the seconds after which to poll again (at most 30, a quarter of the wait and a
      third of the idle limit; drawn from the top fifth below that; the most while paused or
      sold out). ]]
-- @include token_entry
local function queue_of(k, cfg, now, seed, stream)
  local q = {}
  local DECAY = math.exp(-1 / 60)
  local mark  -- {second, n, avg, soldOut}: read once a call, kept up to date by admit()

  function q.admissions()
    if not mark then
      local second = math.floor(now / 1000)
      local m = redis.call('HMGET', k.rate, 'sec', 'n', 'avg', 'soldOut')
      local sec, n, avg = tonumber(m[1]) or second, tonumber(m[2]) or 0, tonumber(m[3]) or 0
      if sec < second then
        avg = avg * DECAY ^ (second - sec) + n * (1 - DECAY) * DECAY ^ (second - sec - 1)
        n = 0
      end
      mark = {second, n, avg, tonumber(m[4])}
    end
    return mark[1], mark[2], mark[3], mark[4]
  end

  -- Shoppers the stock still allows (admitPerSeat a seat free or held), and the seats on
  -- offer that have not admitted their one waiter yet: each returned seat admits the next in
  -- line even when ACTIVE tokens fill the stock's room (rate.credited: the return time of the
  -- latest offer that admitted one). nil: no bound (a concert loaded before `seats` was
  -- counted has none until the tick).
  local function stock_room(active)
    if cfg.admitPerSeat <= 0 then return nil end
    local c = redis.call('HMGET', k.concert, 'seats', 'sold')
    if not c[1] then return nil end
    local room = math.ceil(cfg.admitPerSeat * (tonumber(c[1]) - (tonumber(c[2]) or 0)))
                 - active
    local credits, credited = 0, nil
    if cfg.returnHoldMs > 0 then
      credited = math.max(tonumber(redis.call('HGET', k.rate, 'credited')) or 0,
                          now - cfg.returnHoldMs)
      credits = redis.call('ZCOUNT', k.offers, '(' .. credited, '+inf')
    end
    return math.max(room, 0), credits, credited
  end

  -- n admissions past the stock's own room use n offers' credits, oldest first.
  local function spend_credits(n, credited)
    local last = redis.call('ZRANGEBYSCORE', k.offers, '(' .. credited, '+inf', 'WITHSCORES',
                            'LIMIT', n - 1, 1)
    if last[2] then redis.call('HSET', k.rate, 'credited', last[2]) end
  end

  -- Park-Miller, seeded per call with a secure random number from the engine: for the
  -- random draws of queueing "random" (exact in doubles: 16807 * 2^31 < 2^53).
  local prng = tonumber(seed) % 2147483646 + 1
  local function rand()
    prng = (prng * 16807) % 2147483647
    return prng / 2147483647
  end

  local function next_waiter()
    if cfg.queueing == 1 then
      local n = redis.call('ZCARD', k.waiting)
      if n == 0 then return nil end
      local at = math.floor(rand() * n)
      local pick = redis.call('ZRANGE', k.waiting, at, at)[1]
      redis.call('ZREM', k.waiting, pick)
      return pick
    end
    return redis.call('ZPOPMIN', k.waiting)[1]
  end

  -- At most the free ACTIVE slots and this second's remaining admissions; a waiter that went
  -- idle leaves instead of taking a slot.
  function q.admit(who)
    if cfg.paused == 1 or now < cfg.opensAt then return 0, nil, 0 end
    local second, admitted, avg, sold_out = q.admissions()
    local room = cfg.admitPerSecond - admitted
    if sold_out or room <= 0 then return 0, nil, 0 end
    local active = redis.call('ZCOUNT', k.active, '(' .. now, '+inf')
    room = math.min(room, cfg.activeLimit - active)
    local stock, credits, credited
    if room > 0 then
      stock, credits, credited = stock_room(active)
      if stock then room = math.min(room, stock + credits) end
    end
    local n, popped, mine = 0, 0, nil
    while n < room and popped < room + 100 do
      local head = next_waiter()
      if not head then break end
      popped = popped + 1
      local kind, secret, polled = entry_of(k.active, redis.call('HGET', k.tokens, head), head)
      if kind == 'W' and polled > now - cfg.idleMs then
        local until_ms = now + cfg.activeTtlMs
        redis.call('HSET', k.tokens, head, secret .. '@' .. until_ms)
        redis.call('ZADD', k.active, until_ms, head)
        if head == who then mine = until_ms end
        n = n + 1
      else
        redis.call('HDEL', k.tokens, head)
      end
    end
    if stock and n > stock then spend_credits(n - stock, credited) end
    if n > 0 then
      redis.call('HSET', k.rate, 'sec', second, 'n', admitted + n, 'avg', avg)
      mark = {second, admitted + n, avg, nil}
      stream.admitted(n)
    end
    return n, mine, popped
  end

  -- Seconds until a waiter at this position is admitted, at the last minute's admission
  -- rate (or this second's, when higher: right after a drop starts), floored at one a second.
  local function estimate(position)
    local _, n, avg = q.admissions()
    return math.ceil(position / math.max(avg, n, 1))
  end

  function q.standing(customer, known)
    local state, position, wait = 0, -1, 0
    local sold_out = select(4, q.admissions())
    if now < cfg.opensAt then
      state, wait = 2, math.ceil((cfg.opensAt - now) / 1000)
    else
      if cfg.queueing == 1 then
        position = math.ceil((redis.call('ZCARD', k.waiting) + 1) / 2)
      else
        position = known or redis.call('ZRANK', k.waiting, customer) + 1
      end
      wait = estimate(position)
      if sold_out then state = 3 end
    end
    -- The next poll: a quarter of the wait, at most 30 s and a third of the idle limit (a
    -- poll keeps the token in the queue), at least 1 s; so that a surge of pollers slows
    -- itself. Drawn from the top fifth below that bound, so that pollers told alike at one
    -- moment (at the opening, say) drift apart instead of polling in waves. Paused or sold
    -- out: the most, as nothing moves until an operator or a returned seat says so.
    local most = math.max(1, math.min(30, math.floor(cfg.idleMs / 3000), math.ceil(wait / 4)))
    if cfg.paused == 1 or sold_out then
      most = math.max(1, math.min(30, math.floor(cfg.idleMs / 3000)))
    end
    if cfg.paused == 1 and state ~= 2 then wait = -1 end
    local poll = most - math.floor(rand() * math.floor(most / 5 + 1))
    return state, position, wait, poll
  end

  return q
end
