#!lua flags=allow-oom
--[[
  A batch of polls answered by an API worker from its view of the queue (engine/
  queue_view.py): each poll's waiter is marked seen in this period's bitmap (include/
  token_entry), which keeps it in the queue. One call a second a worker, instead of one a
  poll. A waiter marked a first time in the period that is not waiting any more (it left:
  idle, revoked, replaced) is named in the reply, so the worker sends its next poll to Redis
  (a 401) even when it missed that departure in the `left` list (more than it keeps went
  between two reads). (Its mark is harmless: nothing reads it.)

  Flag allow-oom: a poll must keep its waiter in the queue when Redis is full (a bit each).

  KEYS[1] concert   hash  seen0..seen2: "<period>:<seq>" of each bitmap (include/waiters)
  KEYS[2] seen0     bits  seq -> polled in a period p with p % 3 == 0
  KEYS[3] seen1     bits  the same, p % 3 == 1
  KEYS[4] seen2     bits  the same, p % 3 == 2
  KEYS[5] settings  hash  the concert's settings (include/settings.lua)
  KEYS[6] departed  bits  seq -> 1 once its waiter left (include/waiters)

  ARGV[1]  default waiting idle limit (ms): a period's length
  ARGV[2..] the seqs polled

  Returns
    {0, written, {seq, ...}}   marks written (one already marked this period is not
                               written again), and the seqs among them not waiting
]]
-- @include clock
-- @include settings
-- @include waiters

local k = {concert = KEYS[1], seen0 = KEYS[2], seen1 = KEYS[3], seen2 = KEYS[4],
           settings = KEYS[5]}
local idle_ms = configured(k.settings, {idleMs = tonumber(ARGV[1])}).idleMs
local bits = marking_of(k, math.floor(time_ms() / idle_ms))
-- Each mark read first, and written (so sent to the AOF and the replicas) once a period a
-- waiter however often it polls; GETBIT in a loop costs what one BITFIELD_RO of them all does.
local written, gone = 0, {}
for i = 2, #ARGV do
  if redis.call('GETBIT', bits, ARGV[i]) == 0 then
    redis.call('SETBIT', bits, ARGV[i], 1)
    written = written + 1
    if redis.call('GETBIT', KEYS[6], ARGV[i]) == 1 then gone[#gone + 1] = ARGV[i] end
  end
end
return {0, written, gone}
