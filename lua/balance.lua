#!lua flags=no-writes
--[[
  A customer's balance. A customer never seen has balance 0.

  KEYS[1] balance  string  integer minor units

  Returns
    {0, balance}
]]
return {0, tonumber(redis.call('GET', KEYS[1]) or '0')}
