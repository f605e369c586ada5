--[[ include: queue_of(k, cfg, now, seed, stream, prp, counts) -> a concert's queue. k: its
  keys by name (concert, tokens, seqs, seen0, seen1, seen2, active, rate, offers); cfg: its
  settings (include/settings: activeLimit, admitPerSecond, admitPerSeat, returnHoldMs,
  activeTtlMs, idleMs, paused, opensAt, queueing); stream: include/events; seed: a secure
  random number for the poll's spread; prp: the key of the pre-queue's order (include/order).

  A waiter is a seq, the order the concert issued its token in (the concert hash's seq). The
  concert hash keeps where the queue stands: prefirst..premax the pre-queue (seqs issued
  before the opening; premax is set at the opening), admitted in the pseudo-random order of
  its slots (prehead: the next slot), then the line (seqs after premax) from head, FIFO. A
  waiter's position is the places ahead of it not yet passed, counting those who left and are
  not passed yet (a serving counter: nobody is ever renumbered). tokens: customer -> "<seq>"
  (WAITING) or "<seq>@<untilMs>" (ACTIVE); seqs: seq -> customer (WAITING ones). A waiter is
  alive while its seq's bit is set in the seen bitmap of this period or the last (a poll sets
  it; periods of idleMs, three bitmaps in turn, include/waiters' seen_of), or it joined
  in one of them (fresh_from): a waiter is dropped between one and two idle limits after its
  last poll. The waiting count is the seqs issued less the left (leftn) and the admitted
  (admitted: include/waiting), so that a join writes no counter.

    q.counts() -> the concert hash's queue fields, read once a call, with the opening done
      when due (premax set); live: the waiters (include/waiting's count); exists: whether
      the concert does; stamps: the seen bitmaps'.
    q.admissions() -> second, admitted this second, avg, soldOut, passes avg: the rate hash
      keeps sec, n, avg (admissions a second, a minute's moving average), pn, pavg (places
      passed a second: admitted or left, for estimates), soldOut (set by the tick); read once.
    q.join(customer) -> seq: a new waiter at the end (the pre-queue before the opening).
    q.leave(customer, seq): a waiter goes (its entry, its seq, the count).
    q.alive(seq) -> whether a waiter polled, or joined, this period or the last.
    q.mark(seq): it polled now.
    q.admit(who) -> n, until, passed: how many it admitted, when `who` was one of them its
      expiry, and how many places it passed (admitted or left). None while paused, before
      opensAt or sold out; at most the active limit's room, this second's admissions left, and
      admitPerSeat ACTIVE tokens a seat still free or held (seats - sold: never more shoppers
      than can still buy), plus one for each seat on offer that has not admitted its waiter
      yet (rate.credited). In order: the pre-queue's slots, then the line; with queueing 1
      ("random") a uniform draw from everyone waiting each time.
    q.standing(seq) -> state, position, wait, poll of a WAITING token: state 0 in the queue, 3
      the same while the concert is sold out (the queue is its waitlist) (position 1-based;
      in random mode the expected rank (n + 1) / 2), state 2 in the pre-queue before the
      opening (position -1, wait: seconds to the opening); wait -1 while paused (no estimate:
      nobody is admitted); poll: the seconds after which to poll again (at most 30, a quarter
      of the wait and a third of the idle limit; drawn from the top fifth below that; the
      most while paused or sold out).
  The same steps as plain functions, for a call that needs no more of the queue (issue.lua's
  join behind waiters builds none of q's closures): queue_counts(k, cfg, now) (q.counts),
  queue_rate(k, now) (q.admissions' fields as a table), queue_join(k, c, cfg, now, customer)
  -> seq, this period's seen bitmap (q.join), standing_of(c, rate, cfg, now, prp, rand, seq)
  (q.standing), prng_of(seed) -> rand; queue_of's last parameter, counts, takes the fields
  queue_counts read already. ]]
-- @include waiters
-- @include order
-- @include rate_average
-- Pre-queue places in all (0 before the opening, or when there was none).
local function pre_places(c)
  return (c.prefirst and c.premax) and c.premax - c.prefirst + 1 or 0
end

-- The concert hash's queue fields (q.counts()).
local function queue_counts(k, cfg, now)
  local c
  local v = redis.call('HMGET', k.concert, 'seq', 'head', 'prefirst', 'premax', 'prehead',
                       'leftn', 'admitted', 'name', 'seen0', 'seen1', 'seen2', 'qv')
  c = {seq = tonumber(v[1]) or 0, head = tonumber(v[2]), prefirst = tonumber(v[3]),
       premax = tonumber(v[4]), prehead = tonumber(v[5]) or 0,
       admitted = tonumber(v[7]) or 0, exists = v[8] ~= false,
       stamps = {v[9], v[10], v[11]}}
  if not v[12] and c.exists then
    -- A queue of an older version (its seq numbered a sorted set's places, whose tokens
    -- end with this one): everything before it counts as passed and admitted. Once.
    if c.seq > 0 and not c.head and not c.prefirst then
      c.head, c.admitted = c.seq + 1, c.seq - (tonumber(v[6]) or 0)
      redis.call('HSET', k.concert, 'head', c.head, 'admitted', c.admitted)
    end
    redis.call('HSET', k.concert, 'qv', 2)
  end
  c.live = c.seq - (tonumber(v[6]) or 0) - c.admitted
  if now >= cfg.opensAt and c.prefirst and not c.premax then  -- the opening
    c.premax = c.seq
    redis.call('HSET', k.concert, 'premax', c.premax)
  end
  -- The line starts after the pre-queue (its seqs are admitted by slot, not by head).
  c.head = math.max(c.head or 1, (c.premax or 0) + 1)
  return c
end

-- The rate hash's fields (q.admissions()): {second, admitted this second, avg, soldOut,
-- passed this second, passes avg}.
local function queue_rate(k, now)
  local second = math.floor(now / 1000)
  local m = redis.call('HMGET', k.rate, 'sec', 'n', 'avg', 'soldOut', 'pn', 'pavg')
  local sec, n, avg = tonumber(m[1]) or second, tonumber(m[2]) or 0, tonumber(m[3]) or 0
  local pn, pavg = tonumber(m[5]) or 0, tonumber(m[6]) or 0
  if sec < second then
    avg, pavg = decayed(avg, n, sec, second), decayed(pavg, pn, sec, second)
    n, pn = 0, 0
  end
  return {second, n, avg, tonumber(m[4]), pn, pavg}
end

-- A new waiter at the end (q.join) -> its seq, and this period's seen bitmap (stamped first).
local function queue_join(k, c, cfg, now, customer)
  local marking = marking_of(k, math.floor(now / cfg.idleMs), c.stamps, c.seq)
  local seq = redis.call('HINCRBY', k.concert, 'seq', 1)
  c.seq = seq
  if now < cfg.opensAt and not c.premax and not c.prefirst then
    c.prefirst = seq
    redis.call('HSET', k.concert, 'prefirst', seq)
  end
  redis.call('HSET', k.tokens, customer, seq)
  redis.call('HSET', k.seqs, seq, customer)
  c.live = c.live + 1
  return seq, marking
end

-- Park-Miller, seeded per call with a secure random number from the engine: for the poll's
-- spread (exact in doubles: 16807 * 2^31 < 2^53). -> rand(): uniform in (0, 1).
local function prng_of(seed)
  local prng = tonumber(seed) % 2147483646 + 1
  return function()
    prng = (prng * 16807) % 2147483647
    return prng / 2147483647
  end
end

-- Places ahead of seq not yet passed (nil: passed: admitted or gone). c: queue_counts'.
local function places_ahead(c, prp, seq)
  local m = pre_places(c)
  if m > 0 and seq <= c.premax then
    local slot = slot_of(prp, m, seq - c.prefirst)
    if slot < c.prehead then return nil end
    return slot - c.prehead
  end
  if seq < c.head then return nil end
  return (m - c.prehead) + (seq - c.head)
end

-- q.standing(seq): c, queue_counts'; rate, queue_rate's; rand, prng_of's.
local function standing_of(c, rate, cfg, now, prp, rand, seq)
  local state, position, wait = 0, -1, 0
  local sold_out = rate[4]
  if now < cfg.opensAt then
    state, wait = 2, math.ceil((cfg.opensAt - now) / 1000)
  else
    if cfg.queueing == 1 then
      position = math.ceil((c.live + 1) / 2)
    else
      position = (places_ahead(c, prp, seq) or 0) + 1
    end
    -- Seconds until admitted, at the last minute's rate of places passed (or this second's,
    -- when higher: right after a drop starts), floored at one a second.
    wait = math.ceil(position / math.max(rate[6], rate[5], 1))
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

local function queue_of(k, cfg, now, seed, stream, prp, counts)
  local q = {}
  local mark, c = nil, counts  -- the rate hash's and the concert hash's fields: read once a call
  local period = math.floor(now / cfg.idleMs)

  function q.counts()
    if not c then c = queue_counts(k, cfg, now) end
    return c
  end

  function q.admissions()
    mark = mark or queue_rate(k, now)
    return mark[1], mark[2], mark[3], mark[4], mark[5], mark[6]
  end

  local marking, seen, fresh  -- this period's bitmap (to write), the two (to read), and the
                               -- last seq before the last period (later ones count as seen)
  function q.mark(seq)
    local n = q.counts()
    marking = marking or marking_of(k, period, n.stamps, n.seq)
    if redis.call('GETBIT', marking, seq) == 0 then  -- written once a period (seen.lua)
      redis.call('SETBIT', marking, seq, 1)
      seen = nil
    end
  end

  function q.alive(seq)
    local n = q.counts()
    fresh = fresh or fresh_from(k, period, n.stamps, n.seq)
    if seq > fresh then return true end  -- joined this period or the last
    seen = seen or {seen_of(k, period, n.stamps) or false,
                    seen_of(k, period - 1, n.stamps) or false}
    return (seen[1] and redis.call('GETBIT', seen[1], seq) == 1) or
           (seen[2] and redis.call('GETBIT', seen[2], seq) == 1) or false
  end

  -- A join writes no mark: a seq after the last period's first mark or join counts as seen
  -- (fresh_from), so the period's stamp is made first, before the seq moves on.
  function q.join(customer)
    local seq
    seq, marking = queue_join(k, q.counts(), cfg, now, customer)
    return seq
  end

  function q.leave(customer, seq)
    if leave_queue(k, customer, seq) then
      local n = q.counts()
      n.live = n.live - 1
    end
  end

  -- Shoppers the stock still allows (admitPerSeat a seat free or held), and the seats on
  -- offer that have not admitted their one waiter yet: each returned seat admits the next in
  -- line even when ACTIVE tokens fill the stock's room. rate.credited marks the latest offer
  -- that admitted one, "<score>|<seat index>": the zset's own order, as seats back in the same
  -- ms share a score (a mark by score alone skipped the ties). The offers after it that came
  -- back within returnHoldMs are the credits: those at its score after it (ties), and those
  -- scored later. nil: no bound (a concert loaded before `seats` was counted has none until
  -- the tick).
  local function stock_room(active)
    if cfg.admitPerSeat <= 0 then return nil end
    local s = redis.call('HMGET', k.concert, 'seats', 'sold')
    if not s[1] then return nil end
    local room = math.ceil(cfg.admitPerSeat * (tonumber(s[1]) - (tonumber(s[2]) or 0)))
                 - active
    if cfg.returnHoldMs <= 0 then return math.max(room, 0), 0, nil end
    local from, ties = now - cfg.returnHoldMs, {}
    local mark = redis.call('HGET', k.rate, 'credited')
    if mark then
      local bar = string.find(mark, '|', 1, true)
      local score = tonumber(bar and string.sub(mark, 1, bar - 1) or mark)
      if score > from then
        from = score
        if bar then
          local seat = string.sub(mark, bar + 1)
          for _, m in ipairs(redis.call('ZRANGEBYSCORE', k.offers, score, score)) do
            if m > seat then ties[#ties + 1] = m end  -- byte order, as Redis orders ties
          end
        end
      end
    end
    local credits = #ties + redis.call('ZCOUNT', k.offers, '(' .. from, '+inf')
    return math.max(room, 0), credits, {from = from, ties = ties}
  end

  -- n admissions past the stock's own room use n offers' credits, oldest first.
  local function spend_credits(n, credited)
    if n <= #credited.ties then
      redis.call('HSET', k.rate, 'credited', credited.from .. '|' .. credited.ties[n])
      return
    end
    local last = redis.call('ZRANGEBYSCORE', k.offers, '(' .. credited.from, '+inf',
                            'WITHSCORES', 'LIMIT', n - #credited.ties - 1, 1)
    if last[2] then redis.call('HSET', k.rate, 'credited', last[2] .. '|' .. last[1]) end
  end

  local rand = prng_of(seed)  -- the poll's spread

  -- The next place in order: its seq, or nil when nobody is left. Passes it (prehead or
  -- head moves on); a place whose waiter left is passed too (its seq answers no customer).
  local function next_place()
    local n = q.counts()
    local m = pre_places(n)
    if n.prehead < m then
      local seq = n.prefirst + place_at(prp, m, n.prehead)
      n.prehead = n.prehead + 1
      return seq
    end
    if n.head <= n.seq then
      local seq = n.head
      n.head = n.head + 1
      return seq
    end
    return nil
  end

  -- Random mode: a uniform draw among the waiters, the fields of the seqs hash (an admitted
  -- or departed seq is out of it). Not a draw of a seq in a range with rejection: the range
  -- would be every seq the concert issued (nothing moves head in this mode), and once most
  -- are admitted nearly every draw missed, stalling the queue with room to spare.
  local function draw_place()
    if q.counts().live <= 0 then return nil end
    local seq = redis.call('HRANDFIELD', k.seqs)
    return seq and tonumber(seq)
  end

  function q.admit(who)
    q.counts()  -- first: a queue of an older version is taken over by the tick, paused or not
    if cfg.paused == 1 or now < cfg.opensAt then return 0, nil, 0 end
    local second, admitted, avg, sold_out, pn, pavg = q.admissions()
    local room = cfg.admitPerSecond - admitted
    if sold_out or room <= 0 then return 0, nil, 0 end
    local active = redis.call('ZCOUNT', k.active, '(' .. now, '+inf')
    room = math.min(room, cfg.activeLimit - active)
    local stock, credits, credited
    if room > 0 then
      stock, credits, credited = stock_room(active)
      if stock then room = math.min(room, stock + credits) end
    end
    local n, passed, mine, drawn = 0, 0, nil, 0
    local before = q.counts()
    local pre0, head0 = before.prehead, before.head
    -- Places whose waiter left are passed on the way, 10,000 a call at most (a gap of
    -- departures closes at that pace a tick; each costs a lookup).
    while n < room and passed < room + 10000 do
      local seq
      if cfg.queueing == 1 then seq = draw_place() else seq = next_place() end
      if not seq then break end
      passed = passed + 1
      local customer = redis.call('HGET', k.seqs, seq)
      if customer then
        local kind, s = entry_of(redis.call('HGET', k.tokens, customer))
        if kind == 'W' and s == seq and q.alive(seq) then
          local until_ms = now + cfg.activeTtlMs
          redis.call('HSET', k.tokens, customer, seq .. '@' .. until_ms)
          redis.call('ZADD', k.active, until_ms, customer)
          redis.call('HDEL', k.seqs, seq)
          before.live = before.live - 1
          if customer == who then mine = until_ms end
          if cfg.queueing == 1 then drawn = math.max(drawn, seq) end
          n = n + 1
        else  -- it went idle (or its token was replaced): it leaves, and is passed
          q.leave(customer, seq)
        end
      end
    end
    if n > 0 then redis.call('HINCRBY', k.concert, 'admitted', n) end
    -- A draw admits behind the head: the workers' views send the polls of seqs up to the
    -- last one drawn to Redis (rmax), which knows them ACTIVE, once FIFO is back.
    if drawn > 0 and drawn > (tonumber(redis.call('HGET', k.concert, 'rmax')) or 0) then
      redis.call('HSET', k.concert, 'rmax', drawn)
    end
    if before.prehead ~= pre0 then redis.call('HSET', k.concert, 'prehead', before.prehead) end
    if before.head ~= head0 then redis.call('HSET', k.concert, 'head', before.head) end
    if stock and n > stock then spend_credits(n - stock, credited) end
    if passed > 0 then
      mark = {second, admitted + n, avg, nil, pn + passed, pavg}
      redis.call('HSET', k.rate, 'sec', second, 'n', admitted + n, 'avg', avg,
                 'pn', pn + passed, 'pavg', pavg)
      if n > 0 then stream.admitted(n) end
    end
    return n, mine, passed
  end

  function q.standing(seq)
    mark = mark or queue_rate(k, now)
    return standing_of(q.counts(), mark, cfg, now, prp, rand, seq)
  end

  return q
end
