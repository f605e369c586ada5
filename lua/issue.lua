#!lua
--[[
  Issue a queue token: return the customer's live token for this concert, or put a new one in
  the queue. A re-issue of the live token is idempotent and costs what a status poll costs: it
  counts as a poll, is never rate limited and writes nothing else. A new token, before the
  concert's opening (opensAt), joins the pre-queue at a random place (its score: a secure
  random number from the engine below every place given after the opening), so that at the
  opening the pre-queue already stands in a uniformly random order, at no cost then; after
  it, a new token joins at the end. A queue at its cap takes no one new; then the rate limits,
  which count new tokens only: per client address, and per customer when the new token
  replaces an earlier one of the customer's still in the tokens hash (a customer has one live
  token at most, so a first token needs no bucket: a waiter costs no rate-limit state). Both
  refuse without writing. Then the gates of a new token, a presale code and a proof of work,
  each while its setting is on (include/gates.lua: checked, then spent with the token). Then
  admit from the queue while the concert has room.

  KEYS[1] concert   hash  {c:C}:concert  (must exist; field seq numbers the queue; seats, sold)
  KEYS[2] tokens    hash  customerId -> "secret@activeUntilMs" or "secret:lastPollMs"
  KEYS[3] waiting   zset  customerId -> queue place
  KEYS[4] active    zset  customerId -> ACTIVE token expiry (ms)
  KEYS[5] rate      hash  sec, n, avg: admissions; soldOut (see include/admission.lua)
  KEYS[6] settings  hash  the concert's settings (include/settings.lua)
  KEYS[7] buckets   hash  "i:<customerId>" / "a:<address>" -> token bucket "level:lastMs"
  KEYS[8] events    stream the concert's events
  KEYS[9] offers    zset  seat index -> when it came back (include/offers.lua)
  KEYS[10] codes    hash  presale code -> uses left (include/gates.lua)
  KEYS[11] solved   string  (optional) the record of the solution given (see below)

  ARGV[1]  customerId
  ARGV[2]  secret for a new token (32 hex chars; unused when a live token exists)
  ARGV[3]  default active limit (tokens ACTIVE at once)
  ARGV[4]  default admissions a second
  ARGV[5]  default active TTL (ms)
  ARGV[6]  default waiting idle limit (ms)
  ARGV[7]  default admissions a seat (0: no bound by the stock)
  ARGV[8]  default time a returned seat is on offer to the queue (ms)
  ARGV[9]  most tokens WAITING at once (the queue's cap)
  ARGV[10] a pre-queue place: a secure random integer in [0, 2^52)
  ARGV[11] a secure random seed for random-mode draws
  ARGV[12] new tokens a second per customer (0: no limit)
  ARGV[13] new tokens a second per client address (0: no limit)
  ARGV[14] the client's address ("" when not limited by address)
  ARGV[15] burst of the rate limits
  ARGV[16] events kept in the stream (about)
  ARGV[17] the presale code given ("" none)
  ARGV[18] the proof of work: "" none, "-" refused by the engine, else its challenge (hex)
  ARGV[19] when that challenge expires (ms; 0 without one)

  Returns
    {0, secret, 1, 0, 0, expiresAtMs, opensAt, 0, paused}     ACTIVE
    {0, secret, 0, position, waitSeconds, 0, opensAt, pollAfter, paused}
                                      WAITING (position 1-based; pollAfter: seconds; wait
                                      -1 while paused: no estimate)
    {0, secret, 3, position, waitSeconds, 0, opensAt, pollAfter, paused}
                                      the same, the concert sold out: on its waitlist
    {0, secret, 2, -1, secondsToOpening, 0, opensAt, pollAfter, paused}
                                      WAITING in the pre-queue (opensAt ms, 0: none)
    {3}                no such concert
    {19}               the queue is full (nothing written)
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

local k = {concert = KEYS[1], tokens = KEYS[2], waiting = KEYS[3], active = KEYS[4],
           rate = KEYS[5], settings = KEYS[6], buckets = KEYS[7], events = KEYS[8],
           offers = KEYS[9]}
local customer, fresh, max_waiting, place = ARGV[1], ARGV[2], tonumber(ARGV[9]), ARGV[10]
local seed, per_customer, per_address = ARGV[11], tonumber(ARGV[12]), tonumber(ARGV[13])
local address, burst, events_max = ARGV[14], tonumber(ARGV[15]), tonumber(ARGV[16])
local AFTER_OPENING = 4503599627370496  -- 2^52: places after the opening come after these
local now = time_ms()
local cfg = configured(k.settings, {
  activeLimit = tonumber(ARGV[3]), admitPerSecond = tonumber(ARGV[4]),
  activeTtlMs = tonumber(ARGV[5]), idleMs = tonumber(ARGV[6]),
  admitPerSeat = tonumber(ARGV[7]), returnHoldMs = tonumber(ARGV[8]), paused = 0,
  opensAt = 0, queueing = 0, accessCodeRequired = 0, challengeComplexity = 0})
local q = queue_of(k, cfg, now, seed, event_stream(k.events, events_max, now))

-- A live token is the answer (a WAITING one counts as polled); one that expired or went idle
-- is replaced. The entry: include/token_entry.lua.
local entry = redis.call('HGET', k.tokens, customer)
local kind, secret, ms = entry_of(k.active, entry, customer)
if kind == 'A' and ms > now then return {0, secret, 1, 0, 0, ms, cfg.opensAt, 0, cfg.paused} end
if kind == 'W' and ms > now - cfg.idleMs then
  redis.call('HSET', k.tokens, customer, secret .. ':' .. now)
  local _, until_ms = q.admit(customer)
  if until_ms then return {0, secret, 1, 0, 0, until_ms, cfg.opensAt, 0, cfg.paused} end
  local state, position, wait, poll = q.standing(customer)
  return {0, secret, state, position, wait, 0, cfg.opensAt, poll, cfg.paused}
end

-- A new token.
if redis.call('EXISTS', k.concert) == 0 then return {3} end
local queued = redis.call('ZCARD', k.waiting)
if queued >= max_waiting then return {19} end

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
local refused = gates({code_required = cfg.accessCodeRequired, codes = KEYS[10],
                       code = ARGV[17], complexity = cfg.challengeComplexity,
                       solution = ARGV[18], expires = tonumber(ARGV[19]), solved = KEYS[11]},
                      now)
if refused then return refused end
for _, d in ipairs(drawn) do redis.call('HSET', k.buckets, d[1], d[2]) end

if entry then  -- the old token's traces
  redis.call('ZREM', k.active, customer)
  queued = queued - redis.call('ZREM', k.waiting, customer)
end
redis.call('HSET', k.tokens, customer, fresh .. ':' .. now)
local last = nil  -- a new token after the opening is last in the queue
if now < cfg.opensAt then
  redis.call('ZADD', k.waiting, place, customer)
else
  redis.call('ZADD', k.waiting, AFTER_OPENING + redis.call('HINCRBY', k.concert, 'seq', 1),
             customer)
  last = queued + 1
end

local _, until_ms, popped = q.admit(customer)
if until_ms then return {0, fresh, 1, 0, 0, until_ms, cfg.opensAt, 0, cfg.paused} end
local state, position, wait, poll = q.standing(customer, last and last - popped)
return {0, fresh, state, position, wait, 0, cfg.opensAt, poll, cfg.paused}
