#!lua flags=allow-oom
--[[
  Take a concert's tick lease when Redis is full. engine/tick.py takes it with a plain
  SET NX PX (~2 µs a worker that finds it taken); Redis refuses that SET above maxmemory, as
  any write, and the tick, which is what frees memory (expired holds and tokens, idle
  waiters), would stop with it. Only then does the tick call this script instead.

  Flag allow-oom: a few bytes that expire by themselves, so that the tick runs.

  KEYS[1] lease  string, expires: the worker ticking the concert now

  ARGV[1] this worker's id
  ARGV[2] the lease (ms)

  Returns
    {0, 1}  taken: tick the concert
    {0, 0}  another worker holds it
]]
local lease, worker, lease_ms = KEYS[1], ARGV[1], ARGV[2]

if redis.call('SET', lease, worker, 'NX', 'PX', lease_ms) then return {0, 1} end
return {0, 0}
