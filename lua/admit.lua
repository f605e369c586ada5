#!lua flags=allow-oom
--[[
  The background tick of one concert (about once a second in all, by whichever API worker
  takes the concert's short lease first, see engine/tick.py): drop expired ACTIVE tokens,
  release expired holds, purge long-closed reservations, admit from the queue, and list pays
  stuck in PAYING for the engine to finish. Idle WAITING tokens are sweep.lua's. Every step is
  bounded, so one tick never blocks Redis for long.

  Flag allow-oom: its sweeps are what frees memory, so they must run when Redis is full.

  KEYS[1]  tokens   hash  customerId -> secret (ACTIVE) or "secret:lastPollMs" (WAITING)
  KEYS[2]  waiting  zset  customerId -> queue ticket (FIFO)
  KEYS[3]  active   zset  customerId -> ACTIVE token expiry (ms)
  KEYS[4]  held     hash  customerId -> open holds under the current token
  KEYS[5]  rate     hash  sec, n, avg: admissions (see include/admission.lua)
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
  ARGV[6] keep closed reservations this long (ms): a late pay of an expired or cancelled one
          gets 409, and the customer's pay records of it are kept as long

  Returns
    {0, admitted, tokensDropped, holdsReleased, stale, forget}
    stale:  {reservationId, customerId, attempt, ...}  pays stuck in PAYING (at most 100)
    forget: {reservationId, customerId, ...}  purged reservations that had a pay attempt,
            whose customer-side records forget.lua drops (at most 1000)
]]
local tokens, waiting, active, held, rate = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local holds, paying, res, taken, free, gone = KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10], KEYS[11]
local limit, per_second = tonumber(ARGV[1]), tonumber(ARGV[2])
local ttl_ms, idle_ms = tonumber(ARGV[3]), tonumber(ARGV[4])
local stale_ms, keep_ms = tonumber(ARGV[5]), tonumber(ARGV[6])
local SWEEP = 1000

-- @include clock

-- @include release

-- @include admission

local dropped = 0
for _, customer in ipairs(redis.call('ZRANGEBYSCORE', active, '-inf', now, 'LIMIT', 0, SWEEP)) do
  redis.call('ZREM', active, customer)
  redis.call('HDEL', tokens, customer)
  redis.call('HDEL', held, customer)
  dropped = dropped + 1
end

local released = release_due(SWEEP)

-- Closed long ago: an expired or cancelled record goes; a PAID one stays (it is the ticket).
local forget = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', gone, '-inf', now - keep_ms, 'LIMIT', 0, SWEEP)) do
  local raw = redis.call('HGET', res, id)
  local rec = raw and cjson.decode(raw)
  if rec and rec.status ~= 'PAID' then redis.call('HDEL', res, id) end
  redis.call('ZREM', gone, id)
  if rec and rec.attempt > 0 then
    forget[#forget + 1] = id
    forget[#forget + 1] = rec.customer
  end
end

local admitted = admit()

local stale = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', paying, '-inf', now - stale_ms, 'LIMIT', 0, 100)) do
  local rec = cjson.decode(redis.call('HGET', res, id))
  stale[#stale + 1] = id
  stale[#stale + 1] = rec.customer
  stale[#stale + 1] = rec.attempt
end
return {0, admitted, dropped, released, stale, forget}
