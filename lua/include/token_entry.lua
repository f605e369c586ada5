--[[ include: a customer's token in the concert's tokens hash, and when its waiter was seen.
  entry_of(entry) -> kind, seq, untilMs: "<seq>@<untilMs>" is an ACTIVE token (kind 'A', its
  expiry: a token check is one read), "<seq>" a WAITING one (kind 'W'); no entry: nil. seq is
  the token's place in the order the concert issued them (include/admission).
  seen_of(k, period, stamps) -> the seen bitmap of a period, where a poll sets its waiter's seq, or
  nil when nothing was marked in that period: k.seen0, k.seen1, k.seen2 in turn, each stamped
  with its period in the concert hash (fields seen0..seen2), so a bitmap left from an older
  period is never read as this one's, whether or not a tick ran in between. stamps: the three
  fields' values when the caller read them already, else they are read here.
  marking_of(k, period, stamps) -> the same bitmap for writing: cleared first when it holds an
  older period's marks.
  leave_queue(k, customer, seq) -> whether it was waiting: a waiter leaves the queue; its seq
  goes on k.left (the last LEFT_KEPT; the concert hash's leftn counts every one), which the
  API workers read with their view, so a poll of it is asked of Redis (engine/queue_view.py). ]]
local LEFT_KEPT = 100000

local function entry_of(entry)
  if not entry then return nil end
  local at = string.find(entry, '@', 1, true)
  if at then
    return 'A', tonumber(string.sub(entry, 1, at - 1)), tonumber(string.sub(entry, at + 1))
  end
  return 'W', tonumber(entry), nil
end

local function stamp_of(k, i, stamps)
  if stamps then return tonumber(stamps[i + 1]) end
  return tonumber(redis.call('HGET', k.concert, 'seen' .. i))
end

local function seen_of(k, period, stamps)
  local i = period % 3
  if stamp_of(k, i, stamps) ~= period then return nil end
  return k['seen' .. i]
end

local function marking_of(k, period, stamps)
  local i = period % 3
  if stamp_of(k, i, stamps) ~= period then
    redis.call('UNLINK', k['seen' .. i])
    redis.call('HSET', k.concert, 'seen' .. i, period)
    if stamps then stamps[i + 1] = period end
  end
  return k['seen' .. i]
end

-- A waiter leaves the queue (revoked, idle, or replaced by a new token): its seq answers no
-- customer any more, the waiting count goes down, and its entry goes when it is still this
-- seq's. k: concert (live, leftn), tokens, seqs, left.
local function leave_queue(k, customer, seq)
  local was = redis.call('HDEL', k.seqs, seq) == 1
  if was then
    redis.call('HINCRBY', k.concert, 'live', -1)
    redis.call('HINCRBY', k.concert, 'leftn', 1)
    if redis.call('RPUSH', k.left, seq) > LEFT_KEPT then redis.call('LPOP', k.left) end
  end
  local kind, s = entry_of(redis.call('HGET', k.tokens, customer))
  if kind == 'W' and s == seq then redis.call('HDEL', k.tokens, customer) end
  return was
end
