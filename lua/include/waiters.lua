--[[ include: when a concert's waiters were seen, and a waiter leaving.
  seen_of(k, period, stamps) -> the seen bitmap of a period, where a poll sets its waiter's seq,
  or nil when nothing was marked in that period: k.seen0, k.seen1, k.seen2 in turn, each
  stamped "<period>:<seq>" in the concert hash (fields seen0..seen2: the period, and the
  concert's last seq when the period's first mark or join came), so a bitmap left from an
  older period is never read as this one's, whether or not a tick ran in between. stamps: the
  three fields' values when the caller read them already, else they are read here.
  marking_of(k, period, stamps, seq_now) -> the same bitmap for writing: cleared and stamped
  first when it holds an older period's marks (seq_now: the concert's last seq, read when
  nil).
  fresh_from(k, period, stamps, seq_now) -> the last seq issued before the last period's first
  mark or join: a waiter after it joined this period or the last, which counts as seen (a join
  writes no mark).
  leave_queue(k, customer, seq) -> whether it was waiting: a waiter leaves the queue; its seq
  goes on k.left (the last LEFT_KEPT; the concert hash's leftn counts every one), which the
  API workers read with their view, so a poll of it is asked of Redis (engine/queue_view.py),
  and its bit is set in k.departed, which seen.lua reads (a view that missed it learns it).
  (Apart from include/token_entry, so that the scripts that only check a token do not build
  these functions on every call.) ]]
-- @include token_entry
local LEFT_KEPT = 100000

-- The period and the seq of a bitmap's stamp ("<period>:<seq>"), or nil.
local function stamp_of(k, i, stamps)
  local stamp
  if stamps then stamp = stamps[i + 1] else stamp = redis.call('HGET', k.concert, 'seen' .. i) end
  if not stamp then return nil end
  local colon = string.find(stamp, ':', 1, true)
  if not colon then return nil end
  return tonumber(string.sub(stamp, 1, colon - 1)), tonumber(string.sub(stamp, colon + 1))
end

local function seen_of(k, period, stamps)
  local i = period % 3
  if stamp_of(k, i, stamps) ~= period then return nil end
  return k['seen' .. i]
end

local function marking_of(k, period, stamps, seq_now)
  local i = period % 3
  if stamp_of(k, i, stamps) ~= period then
    seq_now = seq_now or tonumber(redis.call('HGET', k.concert, 'seq')) or 0
    local stamp = period .. ':' .. seq_now
    redis.call('UNLINK', k['seen' .. i])
    redis.call('HSET', k.concert, 'seen' .. i, stamp)
    if stamps then stamps[i + 1] = stamp end
  end
  return k['seen' .. i]
end

local function fresh_from(k, period, stamps, seq_now)
  local p, seq = stamp_of(k, (period - 1) % 3, stamps)
  if p == period - 1 then return seq end
  p, seq = stamp_of(k, period % 3, stamps)
  if p == period then return seq end
  return seq_now
end

-- A waiter leaves the queue (revoked, idle, or replaced by a new token): its seq answers no
-- customer any more, the waiting count goes down, and its entry goes when it is still this
-- seq's. k: concert (leftn), tokens, seqs, left, departed.
local function leave_queue(k, customer, seq)
  local was = redis.call('HDEL', k.seqs, seq) == 1
  if was then
    redis.call('HINCRBY', k.concert, 'leftn', 1)
    redis.call('SETBIT', k.departed, seq, 1)
    if redis.call('RPUSH', k.left, seq) > LEFT_KEPT then redis.call('LPOP', k.left) end
  end
  local kind, s = entry_of(redis.call('HGET', k.tokens, customer))
  if kind == 'W' and s == seq then redis.call('HDEL', k.tokens, customer) end
  return was
end
