#!lua
--[[
  An operator sets a concert's settings (the engine has validated each value; times in ms,
  flags 0/1): each named field is set, or reset to its default when its value is "". Every
  script reads them at once (include/settings.lua): a change takes effect with the next call,
  in every API worker.

  KEYS[1] concert   hash  must exist
  KEYS[2] settings  hash  field -> value

  ARGV[1..] field, value, field, value, ...

  Returns
    {0}   set       {3}   no such concert
]]
local concert, settings = KEYS[1], KEYS[2]
if redis.call('EXISTS', concert) == 0 then return {3} end
for i = 1, #ARGV, 2 do
  if ARGV[i + 1] == '' then
    redis.call('HDEL', settings, ARGV[i])
  else
    redis.call('HSET', settings, ARGV[i], ARGV[i + 1])
  end
end
return {0}
