#!lua flags=allow-oom
--[[
  Where a concert's queue stands, for the API workers' view of it (engine/queue_view.py),
  from which they answer the polls of WAITING tokens without a call each: a waiter's
  position follows from its seq and these (include/admission). Read about once a second a
  worker. It opens the pre-queue when its opening is due (premax), as every queue script does.

  Flag allow-oom: the opening is one field, and the view must be read when Redis is full.

  KEYS[1] concert   hash  seq, head, prefirst, premax, prehead, leftn, admitted (include/admission)
  KEYS[2] rate      hash  sec, n, avg, pn, pavg: admissions and places passed; soldOut
  KEYS[3] settings  hash  the concert's settings (include/settings.lua)
  KEYS[4] left      list  the seqs of the last waiters who left (include/waiters)

  ARGV[1] default waiting idle limit (ms)
  ARGV[2] departures the worker has read already (the leftn of its last view; 0: none)

  Returns
    {0, nowMs, seq, head, prefirst, premax, prehead, live, passedPerSecond, soldOutMs,
     paused, opensAtMs, queueing, idleMs, leftn, {seq, ...}, rmax}
    (prefirst, premax 0 when none; passedPerSecond: places passed a second, the last
    minute's average or this second's when higher, as text; leftn: departures in all, and
    the seqs of those the worker has not read yet, of the last ones kept; rmax: the last
    seq random queueing admitted, 0 none: a poll up to it is asked of Redis)
]]
-- @include clock
-- @include settings
-- @include rate_average

local concert, rate, settings, left = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local now = time_ms()
local cfg = configured(settings, {idleMs = tonumber(ARGV[1]), paused = 0, opensAt = 0,
                                  queueing = 0})
local c = redis.call('HMGET', concert, 'seq', 'head', 'prefirst', 'premax', 'prehead', 'leftn',
                     'admitted', 'rmax')
local seq, prefirst, premax = tonumber(c[1]) or 0, tonumber(c[3]), tonumber(c[4])
if now >= cfg.opensAt and prefirst and not premax then  -- the opening
  premax = seq
  redis.call('HSET', concert, 'premax', premax)
end
local head = math.max(tonumber(c[2]) or 1, (premax or 0) + 1)

local m = redis.call('HMGET', rate, 'sec', 'pn', 'pavg', 'soldOut')
local second = math.floor(now / 1000)
local sec, pn, pavg = tonumber(m[1]) or second, tonumber(m[2]) or 0, tonumber(m[3]) or 0
if sec < second then
  pavg = decayed(pavg, pn, sec, second)
  pn = 0
end
local leftn = tonumber(c[6]) or 0
local live = seq - leftn - (tonumber(c[7]) or 0)
local new = math.max(0, leftn - tonumber(ARGV[2]))
local departed = {}
if new > 0 then departed = redis.call('LRANGE', left, -new, -1) end
return {0, now, seq, head, prefirst or 0, premax or 0, tonumber(c[5]) or 0, live,
        string.format('%.3f', math.max(pavg, pn)),
        tonumber(m[4]) or 0, cfg.paused, cfg.opensAt, cfg.queueing, cfg.idleMs, leftn,
        departed, tonumber(c[8]) or 0}
