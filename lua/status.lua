#!lua flags=allow-oom
--[[
  Poll a queue token: keep a WAITING token in the queue (it leaves after the idle limit without
  polls), admit from the queue while the concert has room, and tell where the token stands.
  Polling is never rate limited (the report's 2,000 users poll with one token).

  Flag allow-oom: it only moves tokens along the queue, and a poll must keep working when
  Redis is full.

  KEYS[1] tokens    hash  customerId -> "secret@activeUntilMs" or "secret:lastPollMs"
  KEYS[2] waiting   zset  customerId -> queue place
  KEYS[3] active    zset  customerId -> ACTIVE token expiry (ms)
  KEYS[4] rate      hash  sec, n, avg: admissions; soldOut (see include/admission.lua)
  KEYS[5] settings  hash  the concert's settings (include/settings.lua)
  KEYS[6] events    stream the concert's events
  KEYS[7] concert   hash  seats, sold: the stock admission is sized to
  KEYS[8] offers    zset  seat index -> when it came back (include/offers.lua)

  ARGV[1] customerId
  ARGV[2] token secret (32 hex chars)
  ARGV[3] default active limit (tokens ACTIVE at once)
  ARGV[4] default admissions a second
  ARGV[5] default active TTL (ms)
  ARGV[6] default waiting idle limit (ms)
  ARGV[7] default admissions a seat (0: no bound by the stock)
  ARGV[8] default time a returned seat is on offer to the queue (ms)
  ARGV[9] a secure random seed for random-mode draws
  ARGV[10] events kept in the stream (about)

  Returns
    {0, 1, 0, 0, expiresAtMs, opensAt, 0, paused}             ACTIVE
    {0, 0, position, waitSeconds, 0, opensAt, pollAfter, paused}
                                      WAITING (position 1-based; pollAfter: seconds; wait
                                      -1 while paused: no estimate)
    {0, 3, position, waitSeconds, 0, opensAt, pollAfter, paused}
                                      the same, the concert sold out: on its waitlist
    {0, 2, -1, secondsToOpening, 0, opensAt, pollAfter, paused}
                                      WAITING in the pre-queue (opensAt ms, 0: none)
    {1}                                                unknown, expired, idle or finished
]]
-- @include clock
-- @include settings
-- @include events
-- @include admission

local k = {tokens = KEYS[1], waiting = KEYS[2], active = KEYS[3], rate = KEYS[4],
           settings = KEYS[5], events = KEYS[6], concert = KEYS[7], offers = KEYS[8]}
local customer, secret, seed, events_max = ARGV[1], ARGV[2], ARGV[9], tonumber(ARGV[10])
local now = time_ms()
local cfg = configured(k.settings, {
  activeLimit = tonumber(ARGV[3]), admitPerSecond = tonumber(ARGV[4]),
  activeTtlMs = tonumber(ARGV[5]), idleMs = tonumber(ARGV[6]),
  admitPerSeat = tonumber(ARGV[7]), returnHoldMs = tonumber(ARGV[8]), paused = 0,
  opensAt = 0, queueing = 0})

local kind, s, ms = entry_of(k.active, redis.call('HGET', k.tokens, customer), customer)
if s ~= secret then return {1} end
if kind == 'A' then
  if ms > now then return {0, 1, 0, 0, ms, cfg.opensAt, 0, cfg.paused} end
  return {1}
end
if ms <= now - cfg.idleMs then
  redis.call('ZREM', k.waiting, customer)
  redis.call('HDEL', k.tokens, customer)
  return {1}
end
redis.call('HSET', k.tokens, customer, secret .. ':' .. now)

local q = queue_of(k, cfg, now, seed, event_stream(k.events, events_max, now))
local _, active_until = q.admit(customer)
if active_until then return {0, 1, 0, 0, active_until, cfg.opensAt, 0, cfg.paused} end
local state, position, wait, poll = q.standing(customer)
return {0, state, position, wait, 0, cfg.opensAt, poll, cfg.paused}
