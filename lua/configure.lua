#!lua
--[[
  An operator sets a concert's settings (the engine has validated each value; times in ms,
  flags 0/1): each named field is set, or reset to its default when its value is "". Every
  script reads them at once (include/settings.lua): a change takes effect with the next call,
  in every API worker. An opening (opensAt) in the future is refused while waiters stand in a
  queue formed at or after an opening: a new pre-queue would put every later arrival ahead of
  them. Moving an opening while only a pre-queue stands is fine; an opening in the future
  with nobody waiting starts a new pre-queue (include/admission). A catalogue load sets them
  before the concert exists (it is created last), so a concert can go on sale paused or with
  its opening. A new idle limit changes the seen marks' periods (include/waiters), so that
  no mark made under the old one would count: every waiter counts as seen in the last period
  of the new one (its stamp "<period>:0"), and stays while it polls in the current one.

  KEYS[1] concert   hash  the concert (must exist, unless ARGV[1] is "load"); the queue's
                          fields: prefirst, premax, prehead, head, the waiters (include/
                          admission, include/waiting)
  KEYS[2] settings  hash  field -> value

  ARGV[1] "load" (a catalogue load: the concert may not exist yet) or "patch"
  ARGV[2] the default waiting idle limit (ms): a change of the concert's (idleMs, set or
          reset) carries the seen marks over (below); 0 at a load
  ARGV[3..] field, value, field, value, ...

  Returns
    {0}   set       {3}   no such concert
    {29, waiting}   an opening in the future while `waiting` tokens stand in a queue formed
                    at or after an opening (nothing changed)
]]
-- @include clock
-- @include waiting
-- @include settings

local concert, settings = KEYS[1], KEYS[2]
local now = time_ms()

if ARGV[1] ~= 'load' and redis.call('EXISTS', concert) == 0 then return {3} end
local default_idle = tonumber(ARGV[2])
local idle_before = default_idle > 0 and configured(settings, {idleMs = default_idle}).idleMs
for i = 3, #ARGV, 2 do
  if ARGV[i] == 'opensAt' and ARGV[i + 1] ~= '' and tonumber(ARGV[i + 1]) > now then
    local q = redis.call('HMGET', concert, 'prefirst', 'premax', 'head')
    local live = waiting_count(concert)
    if live > 0 and (q[2] or not q[1]) then return {29, live} end
    if q[2] then  -- a new pre-queue; the line goes on after the last one's places
      redis.call('HDEL', concert, 'prefirst', 'premax', 'prehead')
      redis.call('HSET', concert, 'head', math.max(tonumber(q[3]) or 1, tonumber(q[2]) + 1))
    end
  end
end
for i = 3, #ARGV, 2 do
  if ARGV[i + 1] == '' then
    redis.call('HDEL', settings, ARGV[i])
  else
    redis.call('HSET', settings, ARGV[i], ARGV[i + 1])
  end
end
if idle_before then
  local idle = configured(settings, {idleMs = default_idle}).idleMs
  if idle ~= idle_before then
    local last = math.floor(now / idle) - 1
    redis.call('HSET', concert, 'seen' .. (last % 3), last .. ':0')
  end
end
return {0}
