#!lua flags=no-writes
--[[
  The numbers of one concert at a glance (python -m engine stats, and /metrics).

  KEYS[1] waiting  zset  customerId -> queue ticket
  KEYS[2] active   zset  customerId -> ACTIVE token expiry (ms)
  KEYS[3] holds    zset  reservation id -> hold expiry (ms)
  KEYS[4] paying   zset  reservation id -> pay start (ms)
  KEYS[5] concert  hash  field sold counts sales
  KEYS[6] free     hash  optionId -> free seats

  Returns
    {0, waiting, active, holds, paying, sold, freeSeats}
    (active and holds count only those not yet expired)
]]
local waiting, active, holds, paying, concert, free =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]

-- @include clock

local free_seats = 0
for _, n in ipairs(redis.call('HVALS', free)) do free_seats = free_seats + tonumber(n) end
return {0, redis.call('ZCARD', waiting), redis.call('ZCOUNT', active, '(' .. now, '+inf'),
        redis.call('ZCOUNT', holds, '(' .. now, '+inf'), redis.call('ZCARD', paying),
        tonumber(redis.call('HGET', concert, 'sold') or '0'), free_seats}
