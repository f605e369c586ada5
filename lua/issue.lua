#!lua
--[[
  Issue a queue token: return the customer's live token for this concert, or put a new one in
  the queue. A re-issue of the live token is idempotent and costs what a status poll costs: it
  counts as a poll, is never rate limited and writes nothing else. A new token takes the next
  seq (the engine makes the token's value from it): before the concert's opening (opensAt) it
  joins the pre-queue, whose order at the opening is a keyed pseudo-random permutation of its
  seqs (include/order: the opening costs nothing); after it, the end of the line. A queue at
  its cap takes no one new; then the rate limits, which count new tokens only: per client
  address, and per customer when the new token replaces an earlier one of the customer's still
  in the tokens hash (a customer has one live token at most, so a first token needs no bucket:
  a waiter costs no rate-limit state). Both refuse without writing. Then the gates of a new
  token, a presale code and a proof of work, each while its setting is on (include/gates.lua:
  checked, then spent with the token). Then a new token that nobody waits ahead of is admitted
  while the concert has room; behind waiters it waits (the tick, and the polls near the head
  that the workers send to Redis, admit in order: a join never walks the queue).

  KEYS[1]  concert   hash  must exist; seq, head, prefirst, premax, prehead, leftn, admitted
                           (the queue: include/admission); seats, sold (the stock)
  KEYS[2]  tokens    hash  customerId -> "<seq>" (WAITING) or "<seq>@<activeUntilMs>" (ACTIVE)
  KEYS[3]  seqs      hash  seq -> customerId of a WAITING token
  KEYS[4]  seen0     bits  seq -> polled in a period p with p % 3 == 0 (include/waiters)
  KEYS[5]  seen1     bits  the same, p % 3 == 1
  KEYS[6]  seen2     bits  the same, p % 3 == 2
  KEYS[7]  active    zset  customerId -> ACTIVE token expiry (ms)
  KEYS[8]  rate      hash  sec, n, avg, pn, pavg: admissions and places passed; soldOut
  KEYS[9]  settings  hash  the concert's settings (include/settings.lua)
  KEYS[10] buckets   hash  "i:<customerId>" / "a:<address>" -> token bucket "level:lastMs"
  KEYS[11] events    stream the concert's events
  KEYS[12] offers    zset  seat index -> when it came back (include/offers.lua)
  KEYS[13] left      list  the seqs of the last waiters who left (include/waiters)
  KEYS[14] codes     hash  presale code -> uses left (include/gates.lua)
  KEYS[15] departed  bits  seq -> 1 once its waiter left (include/waiters)
  KEYS[16] solved    string  (optional) the record of the solution given (see below)

  ARGV[1]  customerId
  ARGV[2]  the key of the pre-queue's order (include/order)
  ARGV[3]  default active limit (tokens ACTIVE at once)
  ARGV[4]  default admissions a second
  ARGV[5]  default active TTL (ms)
  ARGV[6]  default waiting idle limit (ms)
  ARGV[7]  default admissions a seat (0: no bound by the stock)
  ARGV[8]  default time a returned seat is on offer to the queue (ms)
  ARGV[9]  most tokens WAITING at once (the queue's cap)
  ARGV[10] a secure random seed for the poll's spread (pollAfter)
  ARGV[11] new tokens a second per customer (0: no limit)
  ARGV[12] new tokens a second per client address (0: no limit)
  ARGV[13] burst of the rate limits
  ARGV[14] events kept in the stream (about)
  ARGV[15] places the queue passes a second, and
  ARGV[16] since when it is sold out (ms, 0: it is not), as the API worker's view of the
           queue read them (engine/queue_view.py, at most a second old): a new token behind
           waiters takes its estimate from them, as a poll answered by that view does, and
           the script reads no rate hash. "" and "": read it.
  ARGV[17] (optional) the client's address (none, or "": not limited by address)
  ARGV[18] (optional) the presale code given (none, or "")
  ARGV[19] (optional) the proof of work: none or "", "-" refused by the engine, else its
           challenge (hex)
  ARGV[20] (optional) when that challenge expires (ms)
  (The engine leaves out the optional ones that are empty: an argument costs a call ~0.07 µs.)

  Returns
    {0, seq, 1, 0, 0, expiresAtMs, opensAt, 0, paused}        ACTIVE
    {0, seq, 0, position, waitSeconds, 0, opensAt, pollAfter, paused}
                                      WAITING (position 1-based; pollAfter: seconds; wait
                                      -1 while paused: no estimate)
    {0, seq, 3, position, waitSeconds, 0, opensAt, pollAfter, paused}
                                      the same, the concert sold out: on its waitlist
    {0, seq, 2, -1, secondsToOpening, 0, opensAt, pollAfter, paused}
                                      WAITING in the pre-queue (opensAt ms, 0: none)
    {3}                no such concert
    {19}               the queue is full, or the concert issued 2^32 - 1 tokens (nothing
                       written)
    {20, retryAfterMs} rate limited (nothing written)
    {50} {51}          a presale code needed, or refused (nothing written)
    {52, complexity} {53, reason, complexity}
                       a proof of work needed, or refused: reason 0 by the engine, 1 expired,
                       2 spent already; the concert's complexity (nothing written)
]]
-- @include clock
-- @include settings
-- @include buckets
-- @include events
-- @include admission
-- @include gates

local k = {concert = KEYS[1], tokens = KEYS[2], seqs = KEYS[3], seen0 = KEYS[4],
           seen1 = KEYS[5], seen2 = KEYS[6], active = KEYS[7], rate = KEYS[8],
           settings = KEYS[9], buckets = KEYS[10], events = KEYS[11], offers = KEYS[12],
           left = KEYS[13], departed = KEYS[15]}
local customer, prp, max_waiting = ARGV[1], ARGV[2], tonumber(ARGV[9])
local seed, per_customer, per_address = ARGV[10], tonumber(ARGV[11]), tonumber(ARGV[12])
local burst, events_max, address = tonumber(ARGV[13]), tonumber(ARGV[14]), ARGV[17] or ''
local now = time_ms()
local cfg = configured(k.settings, {
  activeLimit = tonumber(ARGV[3]), admitPerSecond = tonumber(ARGV[4]),
  activeTtlMs = tonumber(ARGV[5]), idleMs = tonumber(ARGV[6]),
  admitPerSeat = tonumber(ARGV[7]), returnHoldMs = tonumber(ARGV[8]), paused = 0,
  opensAt = 0, queueing = 0, accessCodeRequired = 0, challengeComplexity = 0})

-- A live token is the answer (a WAITING one counts as polled); one that expired or went idle
-- is replaced.
local entry = redis.call('HGET', k.tokens, customer)
local kind, seq, ms = entry_of(entry)
if kind == 'A' and ms > now then return {0, seq, 1, 0, 0, ms, cfg.opensAt, 0, cfg.paused} end
local c = queue_counts(k, cfg, now)
-- The queue's machinery, built only when this call admits or leaves: a join behind waiters
-- (nearly every issue of a drop) needs none of it.
local q
local function queue()
  q = q or queue_of(k, cfg, now, seed, event_stream(k.events, events_max, now), prp, c)
  return q
end
if kind == 'W' and queue().alive(seq) then
  q.mark(seq)
  local _, until_ms = q.admit(customer)
  if until_ms then return {0, seq, 1, 0, 0, until_ms, cfg.opensAt, 0, cfg.paused} end
  local state, position, wait, poll = q.standing(seq)
  return {0, seq, state, position, wait, 0, cfg.opensAt, poll, cfg.paused}
end

-- A new token.
if not c.exists then return {3} end
-- A seq is a bit offset in the seen bitmaps (at most 2^32 - 1): a concert issues that many.
if c.live >= max_waiting or c.seq >= 4294967295 then return {19} end

-- Rate limits on new tokens: the buckets are fields of the buckets hash, written only once
-- the request goes ahead (a refused one changes nothing); the tick drops buckets idle long
-- enough to be full again (admit.lua).
local drawn = {}
local function take(field, per_second)
  if per_second <= 0 then return 0 end
  local wait, b = draw(redis.call('HGET', k.buckets, field), per_second, burst, now)
  if wait == 0 then drawn[#drawn + 1] = {field, b} end
  return wait
end
local wait_ms = entry and take('i:' .. customer, per_customer) or 0
if wait_ms == 0 and address ~= '' then wait_ms = take('a:' .. address, per_address) end
if wait_ms > 0 then return {20, wait_ms} end
if cfg.accessCodeRequired == 1 or cfg.challengeComplexity > 0 then  -- the gates, while on
  local refused = gates({code_required = cfg.accessCodeRequired, codes = KEYS[14],
                         code = ARGV[18] or '', complexity = cfg.challengeComplexity,
                         solution = ARGV[19] or '', expires = tonumber(ARGV[20] or 0),
                         solved = KEYS[16]},
                        now)
  if refused then return refused end
end
for _, d in ipairs(drawn) do redis.call('HSET', k.buckets, d[1], d[2]) end

if kind == 'A' then redis.call('ZREM', k.active, customer) end  -- the old token's traces
if kind == 'W' then queue().leave(customer, seq) end
local waiting = c.live  -- the tokens WAITING before this one
seq = queue_join(k, c, cfg, now, customer)
if waiting == 0 then
  local _, until_ms = queue().admit(customer)
  if until_ms then return {0, seq, 1, 0, 0, until_ms, cfg.opensAt, 0, cfg.paused} end
end
local rate  -- queue_rate's fields, or the worker's view of them: {_, _, _, soldOut, _, pace}
if ARGV[15] == '' then
  rate = queue_rate(k, now)
else
  rate = {0, 0, 0, (tonumber(ARGV[16]) or 0) > 0 or nil, 0, tonumber(ARGV[15])}
end
local state, position, wait, poll = standing_of(c, rate, cfg, now, prp, prng_of(seed), seq)
return {0, seq, state, position, wait, 0, cfg.opensAt, poll, cfg.paused}
