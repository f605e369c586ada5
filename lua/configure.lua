#!lua
--[[
  An operator sets a concert's settings (the engine has validated each value; times in ms,
  flags 0/1): each named field is set, or reset to its default when its value is "". Every
  script reads them at once (include/settings.lua): a change takes effect with the next call,
  in every API worker. An opening (opensAt) in the future is refused while a queue formed
  after an opening stands: the pre-queue places it would give (random, below 2^52) would put
  every later arrival ahead of everyone already waiting (issue.lua). A catalogue load sets
  them before the concert exists (it is created last), so a concert can go on sale paused or
  with its opening.

  KEYS[1] concert   hash  the concert (must exist, unless ARGV[1] is "load")
  KEYS[2] settings  hash  field -> value
  KEYS[3] waiting   zset  customerId -> queue place

  ARGV[1] "load" (a catalogue load: the concert may not exist yet) or "patch"
  ARGV[2..] field, value, field, value, ...

  Returns
    {0}   set       {3}   no such concert
    {29, waiting}   an opening in the future while `waiting` tokens stand in a queue formed
                    after an opening (nothing changed)
]]
-- @include clock

local concert, settings, waiting = KEYS[1], KEYS[2], KEYS[3]
local AFTER_OPENING = 4503599627370496  -- 2^52: the places given after an opening
local now = time_ms()

if ARGV[1] ~= 'load' and redis.call('EXISTS', concert) == 0 then return {3} end
for i = 2, #ARGV, 2 do
  if ARGV[i] == 'opensAt' and ARGV[i + 1] ~= '' and tonumber(ARGV[i + 1]) > now then
    local standing = redis.call('ZCOUNT', waiting, AFTER_OPENING, '+inf')
    if standing > 0 then return {29, standing} end
  end
end
for i = 2, #ARGV, 2 do
  if ARGV[i + 1] == '' then
    redis.call('HDEL', settings, ARGV[i])
  else
    redis.call('HSET', settings, ARGV[i], ARGV[i + 1])
  end
end
return {0}
