#!lua flags=allow-oom
--[[
  The background tick of one concert (about once a second in all, by whichever API worker
  takes the concert's short lease first, see engine/tick.py): drop expired ACTIVE tokens,
  release expired holds, purge long-closed reservations and offers whose time is over, tell
  whether the concert is sold out (every seat sold: no free seat and no hold that could come
  back; a SOLD_OUT event, and BACK_ON_SALE when a seat comes back), admit from the queue,
  drop rate-limit buckets that are full again (and ticket records that held nothing else),
  and list the pays stuck in PAYING and the refunds stuck in REFUNDING for the engine to
  finish. Idle WAITING tokens are sweep.lua's. Every step is bounded, so one tick never blocks Redis
  for long.

  Flag allow-oom: its sweeps are what frees memory, so they must run when Redis is full.

  KEYS[1]  tokens     hash  customerId -> "<seq>" (WAITING) or "<seq>@<activeUntilMs>" (ACTIVE)
  KEYS[2]  seqs       hash  seq -> customerId of a WAITING token
  KEYS[3]  active     zset  customerId -> ACTIVE token expiry (ms)
  KEYS[4]  rate       hash  sec, n, avg, pn, pavg: admissions and places passed; soldOut,
                            credited, cleared (include/admission); bcursor, tcursor: where the
                            idle-bucket scans of buckets and tickets are; bpass: the most
                            buckets there were during their walk
  KEYS[5]  holds      zset  reservation id -> hold expiry (ms)
  KEYS[6]  paying     zset  reservation id -> pay start (ms)
  KEYS[7]  res        hash  reservation id -> JSON record
  KEYS[8]  taken      bits  seat index -> 1 while the seat is held or sold
  KEYS[9]  free       hash  optionId -> free seats
  KEYS[10] gone       zset  closed reservation id -> closed at (ms)
  KEYS[11] settings   hash  the concert's settings (include/settings.lua)
  KEYS[12] tickets    hash  customerId -> ticket record (include/tickets.lua)
  KEYS[13] buckets    hash  rate-limit token buckets (include/buckets.lua)
  KEYS[14] refunding  zset  reservation id -> refund start (ms)
  KEYS[15] events     stream the concert's events
  KEYS[16] concert    hash  the queue's fields (include/admission); seats (on sale in all,
                            counted here once if missing), sold
  KEYS[17] layout     hash  optionId -> "start:count:version": to count the seats once
  KEYS[18] offers     zset  seat index -> when it came back (include/offers.lua)
  KEYS[19] seen0      bits  seq -> polled in a period p with p % 3 == 0 (include/waiters)
  KEYS[20] seen1      bits  the same, p % 3 == 1
  KEYS[21] seen2      bits  the same, p % 3 == 2
  KEYS[22] left      list  the seqs of the last waiters who left (include/waiters)
  KEYS[23] departed  bits  seq -> 1 once its waiter left (include/waiters)

  ARGV[1]  default active limit (tokens ACTIVE at once)
  ARGV[2]  default admissions a second
  ARGV[3]  default active TTL (ms)
  ARGV[4]  default waiting idle limit (ms)
  ARGV[5]  default admissions a seat (0: no bound by the stock)
  ARGV[6]  default time a returned seat is on offer to the queue (ms)
  ARGV[7]  a pay in PAYING (or a refund in REFUNDING) this long is stale (ms)
  ARGV[8]  keep closed reservations this long (ms): a late pay of an expired or cancelled one
           gets 409, and the customer's pay records of it are kept as long
  ARGV[9]  a secure random seed (include/admission's; the tick answers no poll: unused)
  ARGV[10] events kept in the stream (about)
  ARGV[11] a rate-limit bucket untouched this long is full again (ms)
  ARGV[12] the key of the pre-queue's order (include/order)
  ARGV[13] keep a closed hold that no pay touched (attempt 0) this long instead (ms; none:
           as long as the others): the difference is written into the concert hash as
           closedshift, by which include/release.lua dates such a hold earlier in the closed set

  Returns
    {0, admitted, tokensDropped, holdsReleased, stale, forget, refunds}
    stale:   {reservationId, customerId, attempt, ...}  pays stuck in PAYING (at most 100)
    forget:  {reservationId, customerId, ...}  purged reservations that had a pay attempt,
             whose customer-side records forget.lua drops (at most 1000)
    refunds: {reservationId, ...}  refunds stuck in REFUNDING (at most 100)
]]
-- @include clock
-- @include settings
-- @include events
-- @include release
-- @include admission

local k = {tokens = KEYS[1], seqs = KEYS[2], active = KEYS[3], rate = KEYS[4],
           holds = KEYS[5], paying = KEYS[6], res = KEYS[7], taken = KEYS[8], free = KEYS[9],
           gone = KEYS[10], settings = KEYS[11], tickets = KEYS[12], buckets = KEYS[13],
           refunding = KEYS[14], events = KEYS[15], concert = KEYS[16], layout = KEYS[17],
           offers = KEYS[18], seen0 = KEYS[19], seen1 = KEYS[20], seen2 = KEYS[21],
           left = KEYS[22], departed = KEYS[23]}
local stale_ms, keep_ms, seed = tonumber(ARGV[7]), tonumber(ARGV[8]), ARGV[9]
local events_max, bucket_idle_ms, prp = tonumber(ARGV[10]), tonumber(ARGV[11]), ARGV[12]
local closed_shift = math.max(0, keep_ms - (tonumber(ARGV[13]) or keep_ms))
local SWEEP = 1000
local now = time_ms()
local cfg = configured(k.settings, {
  activeLimit = tonumber(ARGV[1]), admitPerSecond = tonumber(ARGV[2]),
  activeTtlMs = tonumber(ARGV[3]), idleMs = tonumber(ARGV[4]),
  admitPerSeat = tonumber(ARGV[5]), returnHoldMs = tonumber(ARGV[6]), paused = 0,
  opensAt = 0, queueing = 0})
local stream = event_stream(k.events, events_max, now)

local dropped = 0
for _, customer in ipairs(redis.call('ZRANGEBYSCORE', k.active, '-inf', now, 'LIMIT', 0,
                                                    SWEEP)) do
  redis.call('ZREM', k.active, customer)
  redis.call('HDEL', k.tokens, customer)
  dropped = dropped + 1
end

local released = release_due(k, now, stream, SWEEP, cfg.returnHoldMs)
redis.call('ZREMRANGEBYSCORE', k.offers, '-inf', now - cfg.returnHoldMs)

-- Sold out: every seat sold (seats - sold = 0: no free seat, no hold that could come back).
-- The seats on sale are counted by create_option.lua; a concert loaded before that is counted
-- here once, from its options' slices.
local stock = redis.call('HMGET', k.concert, 'seats', 'sold')
local seats, sold = tonumber(stock[1]), tonumber(stock[2]) or 0
if not seats then
  seats = 0
  local slices = redis.call('HGETALL', k.layout)
  for i = 1, #slices, 2 do
    if not string.find(slices[i], 'pending:', 1, true) then
      seats = seats + tonumber(string.match(slices[i + 1], '^%d+:(%d+):'))
    end
  end
  if seats > 0 then redis.call('HSET', k.concert, 'seats', seats) end
end
local was_sold_out = redis.call('HGET', k.rate, 'soldOut')
if seats > 0 and sold >= seats and not was_sold_out then
  redis.call('HSET', k.rate, 'soldOut', now)
  stream.stock('SOLD_OUT', sold)
elseif was_sold_out and sold < seats then
  redis.call('HDEL', k.rate, 'soldOut')
  stream.stock('BACK_ON_SALE', sold)
end

-- Closed long ago: an expired, cancelled or refunded record goes; a PAID one stays (it is
-- the ticket). A hold that no pay touched was dated closedshift earlier when it closed, so it
-- goes that much sooner (the shift the closing scripts read is this tick's, written here).
if (tonumber(redis.call('HGET', k.concert, 'closedshift')) or 0) ~= closed_shift then
  redis.call('HSET', k.concert, 'closedshift', closed_shift)
end
local forget = {}
for _, res_id in ipairs(redis.call('ZRANGEBYSCORE', k.gone, '-inf', now - keep_ms, 'LIMIT', 0,
                                              SWEEP)) do
  local raw = redis.call('HGET', k.res, res_id)
  local rec = raw and cjson.decode(raw)
  if not (rec and rec.status == 'REFUNDING') then  -- a refund under way finishes first
    if rec and rec.status ~= 'PAID' then redis.call('HDEL', k.res, res_id) end
    redis.call('ZREM', k.gone, res_id)
    if rec and rec.attempt > 0 then
      forget[#forget + 1] = res_id
      forget[#forget + 1] = rec.customer
    end
  end
end

local admitted = queue_of(k, cfg, now, seed, stream, prp).admit()

-- Rate-limit buckets untouched long enough are full again: as good as none. A ticket record
-- that is nothing but such a bucket (a customer whose reserves were all refused, cancelled or
-- expired) goes too, and with it its token's count of cancels once that token has ended.
local function idle(bucket)
  local last = string.match(bucket, ':(%d+)$')
  return last and tonumber(last) < now - bucket_idle_ms
end
local cursors = redis.call('HMGET', k.rate, 'bcursor', 'tcursor', 'bpass')
-- Enough of the buckets a tick that a walk covers them all in about one idle time (new
-- tokens per address can make many): the most there were during the walk (the hash's table
-- does not shrink as the walk drops them) over the idle time's ticks, at least 200 and at
-- most 10,000 a tick. The most, not those at the walk's start: buckets made during a walk (a
-- flood of addresses) waited for a walk paced for the few before them.
local pass = (cursors[1] or '0') ~= '0' and tonumber(cursors[3]) or 0
pass = math.max(pass, redis.call('HLEN', k.buckets))
local per_tick = math.min(10000, math.max(200, math.ceil(pass * 1000 / bucket_idle_ms)))
local scan = redis.call('HSCAN', k.buckets, cursors[1] or '0', 'COUNT', per_tick)
for i = 1, #scan[2], 2 do
  if idle(scan[2][i + 1]) then redis.call('HDEL', k.buckets, scan[2][i]) end
end
local tscan = redis.call('HSCAN', k.tickets, cursors[2] or '0', 'COUNT', 200)
for i = 1, #tscan[2], 2 do
  local customer = tscan[2][i]
  local token, bucket, cancelled =
    string.match(tscan[2][i + 1], '^0||(%x*)|%d*|([^|]*)|?(%d*)$')  -- %x: older tokens
  local drop = token and (bucket == '' or idle(bucket))
  if drop and cancelled ~= '' then  -- the count of its token's cancels lives with the token
    local kind, seq, until_ms = entry_of(redis.call('HGET', k.tokens, customer))
    drop = not (kind == 'A' and tostring(seq) == token and until_ms > now)
  end
  if drop then redis.call('HDEL', k.tickets, customer) end
end
redis.call('HSET', k.rate, 'bcursor', scan[1], 'tcursor', tscan[1], 'bpass', pass)

local stale = {}
for _, res_id in ipairs(redis.call('ZRANGEBYSCORE', k.paying, '-inf', now - stale_ms, 'LIMIT', 0,
                                              100)) do
  local rec = cjson.decode(redis.call('HGET', k.res, res_id))
  stale[#stale + 1] = res_id
  stale[#stale + 1] = rec.customer
  stale[#stale + 1] = rec.attempt
end
local refunds = redis.call('ZRANGEBYSCORE', k.refunding, '-inf', now - stale_ms, 'LIMIT', 0,
                           100)
return {0, admitted, dropped, released, stale, forget, refunds}
