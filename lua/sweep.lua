#!lua flags=allow-oom
--[[
  Drop idle WAITING tokens (not polled for the idle limit) from one slice of a concert's queue,
  walking it from a cursor: their last poll lives in their token entry, which saves an index
  of ~100 bytes a waiter. The tick calls it as often as it takes to walk the whole queue about
  twice per idle limit (engine/tick.py), each call bounded by the slice.

  Flag allow-oom: it frees memory, so it must run when Redis is full.

  KEYS[1] tokens    hash  customerId -> "secret@activeUntilMs" or "secret:lastPollMs"
  KEYS[2] waiting   zset  customerId -> queue place
  KEYS[3] rate      hash  field cursor: where the walk stands (a rank in waiting)
  KEYS[4] settings  hash  the concert's settings (include/settings.lua)

  ARGV[1] default waiting idle limit (ms)
  ARGV[2] slice: waiters looked at in this call

  Returns
    {0, dropped, looked, waiting}   waiting: the queue's length after the call; the cursor
                                    went back to the head when looked < slice
]]
-- @include clock
-- @include settings

local tokens, waiting, rate, settings = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local n = tonumber(ARGV[2])
local now = time_ms()
local idle_ms = configured(settings, {idleMs = tonumber(ARGV[1])}).idleMs
local cursor = tonumber(redis.call('HGET', rate, 'cursor') or '0')
local slice = redis.call('ZRANGE', waiting, cursor, cursor + n - 1)
local dropped = 0
if #slice > 0 then
  local entries = redis.call('HMGET', tokens, unpack(slice))
  for i = 1, #slice do
    local entry = entries[i]
    -- WAITING: "<secret>:<lastPollMs>" (include/token_entry.lua)
    local queued = entry and string.sub(entry, 33, 33) == ':'
    if not queued or tonumber(string.sub(entry, 34)) <= now - idle_ms then
      redis.call('ZREM', waiting, slice[i])
      if queued then  -- an ACTIVE entry is not this queue place's to drop
        redis.call('HDEL', tokens, slice[i])
      end
      dropped = dropped + 1
    else
      cursor = cursor + 1
    end
  end
end
if #slice < n then cursor = 0 end
redis.call('HSET', rate, 'cursor', cursor)
return {0, dropped, #slice, redis.call('ZCARD', waiting)}
