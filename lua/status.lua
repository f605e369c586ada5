#!lua flags=allow-oom
--[[
  Poll a queue token in Redis: where a WAITING token stands (a poll keeps it in the queue),
  admit from the queue while the concert has room, and tell an ACTIVE token's expiry. The API
  answers most polls of WAITING tokens from its view of the queue instead (engine/
  queue_view.py: no round trip), and asks this script for a token its view says is at the
  head or past it. Polling is never rate limited (the report's 2,000 users poll one token).

  Flag allow-oom: it only moves tokens along the queue, and a poll must keep working when
  Redis is full.

  KEYS[1]  tokens    hash  customerId -> "<seq>" (WAITING) or "<seq>@<activeUntilMs>" (ACTIVE)
  KEYS[2]  seqs      hash  seq -> customerId of a WAITING token
  KEYS[3]  seen0     bits  seq -> polled in a period p with p % 3 == 0 (include/waiters)
  KEYS[4]  seen1     bits  the same, p % 3 == 1
  KEYS[5]  seen2     bits  the same, p % 3 == 2
  KEYS[6]  active    zset  customerId -> ACTIVE token expiry (ms)
  KEYS[7]  rate      hash  sec, n, avg, pn, pavg: admissions and places passed; soldOut
  KEYS[8]  settings  hash  the concert's settings (include/settings.lua)
  KEYS[9]  events    stream the concert's events
  KEYS[10] concert   hash  the queue's fields (include/admission); seats, sold: the stock
  KEYS[11] offers    zset  seat index -> when it came back (include/offers.lua)
  KEYS[12] left      list  the seqs of the last waiters who left (include/waiters)
  KEYS[13] departed  bits  seq -> 1 once its waiter left (include/waiters)

  ARGV[1]  customerId
  ARGV[2]  the token's seq
  ARGV[3]  the key of the pre-queue's order (include/order)
  ARGV[4]  default active limit (tokens ACTIVE at once)
  ARGV[5]  default admissions a second
  ARGV[6]  default active TTL (ms)
  ARGV[7]  default waiting idle limit (ms)
  ARGV[8]  default admissions a seat (0: no bound by the stock)
  ARGV[9]  default time a returned seat is on offer to the queue (ms)
  ARGV[10] a secure random seed for the poll's spread (pollAfter)
  ARGV[11] events kept in the stream (about)

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

local k = {tokens = KEYS[1], seqs = KEYS[2], seen0 = KEYS[3], seen1 = KEYS[4],
           seen2 = KEYS[5], active = KEYS[6], rate = KEYS[7], settings = KEYS[8],
           events = KEYS[9], concert = KEYS[10], offers = KEYS[11],
           left = KEYS[12], departed = KEYS[13]}
local customer, seq, prp = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local seed, events_max = ARGV[10], tonumber(ARGV[11])
local now = time_ms()
local cfg = configured(k.settings, {
  activeLimit = tonumber(ARGV[4]), admitPerSecond = tonumber(ARGV[5]),
  activeTtlMs = tonumber(ARGV[6]), idleMs = tonumber(ARGV[7]),
  admitPerSeat = tonumber(ARGV[8]), returnHoldMs = tonumber(ARGV[9]), paused = 0,
  opensAt = 0, queueing = 0})

local kind, s, ms = entry_of(redis.call('HGET', k.tokens, customer))
if s ~= seq then return {1} end
if kind == 'A' then
  if ms > now then return {0, 1, 0, 0, ms, cfg.opensAt, 0, cfg.paused} end
  return {1}
end
local q = queue_of(k, cfg, now, seed, event_stream(k.events, events_max, now), prp)
if not q.alive(seq) then  -- idle: it leaves now
  q.leave(customer, seq)
  return {1}
end
q.mark(seq)
local _, active_until = q.admit(customer)
if active_until then return {0, 1, 0, 0, active_until, cfg.opensAt, 0, cfg.paused} end
local state, position, wait, poll = q.standing(seq)
return {0, state, position, wait, 0, cfg.opensAt, poll, cfg.paused}
