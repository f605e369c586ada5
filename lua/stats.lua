#!lua flags=no-writes
--[[
  The numbers of one concert at a glance (python -m engine stats, the operators' live stats,
  and /metrics).

  KEYS[1] active    zset  customerId -> ACTIVE token expiry (ms)
  KEYS[2] holds     zset  reservation id -> hold expiry (ms)
  KEYS[3] paying    zset  reservation id -> pay start (ms)
  KEYS[4] concert   hash  the waiters (include/waiting), sold, seats, checkedin (check-ins at
                          the door)
  KEYS[5] free      hash  optionId -> free seats
  KEYS[6] rate      hash  sec, n, avg: admissions; soldOut (see include/admission.lua)
  KEYS[7] settings  hash  the concert's settings (include/settings.lua)
  KEYS[8] offers    zset  seat index -> when it came back (include/offers.lua)

  ARGV[1] default time a returned seat is on offer to the queue (ms)

  Returns
    {0, waiting, active, holds, paying, sold, freeSeats, admissionsPerSecond, paused, opensAt,
     seats, soldOutSince, offered, checkedIn}
    (waiting: the queue's count, idle waiters included until the sweep meets them; active
    and holds count only those not yet expired; admissionsPerSecond: the last
    minute's moving average, or this second's when higher, as text; paused 0/1; opensAt ms,
    0 when none; seats: on sale in all; soldOutSince ms, 0 when not sold out; offered: seats
    that came back on offer to the queue now; checkedIn: tickets checked in, a forced refund
    after takes none back)
]]
-- @include clock
-- @include settings
-- @include waiting
-- @include rate_average

local active, holds, paying, concert, free, rate, settings, offers =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local now = time_ms()

local mark = redis.call('HMGET', rate, 'sec', 'n', 'avg', 'soldOut')
local second = math.floor(now / 1000)
local sec, n, avg = tonumber(mark[1]) or second, tonumber(mark[2]) or 0, tonumber(mark[3]) or 0
if sec < second then
  avg = decayed(avg, n, sec, second)
else
  avg = math.max(avg, n)  -- this second's, as the estimates take it (include/admission.lua)
end
local free_seats = 0
for _, count in ipairs(redis.call('HVALS', free)) do free_seats = free_seats + tonumber(count) end
local cfg = configured(settings, {paused = 0, opensAt = 0, returnHoldMs = tonumber(ARGV[1])})
local counts = redis.call('HMGET', concert, 'sold', 'seats', 'checkedin')
return {0, waiting_count(concert), redis.call('ZCOUNT', active, '(' .. now, '+inf'),
        redis.call('ZCOUNT', holds, '(' .. now, '+inf'), redis.call('ZCARD', paying),
        tonumber(counts[1] or '0'), free_seats, string.format('%.2f', avg), cfg.paused,
        cfg.opensAt, tonumber(counts[2] or '0'), tonumber(mark[4] or '0'),
        redis.call('ZCOUNT', offers, '(' .. (now - cfg.returnHoldMs), '+inf'),
        tonumber(counts[3] or '0')}
