--[[ include: release(id, rec, status, kind) frees a hold's seat, closes the reservation
  (status EXPIRED or CANCELLED), uncounts it from the customer's tickets (and the token it was
  made under), and emits the event `kind` (default: the status); release_due(n)
  releases at most n holds whose time is up.
  needs locals: taken, free, holds, res, gone, tickets, events, events_max, now
  and the includes tickets, events ]]
local function release(id, rec, status, kind)
  redis.call('SETBIT', taken, rec.idx, 0)
  redis.call('HINCRBY', free, rec.option, 1)
  redis.call('ZREM', holds, id)
  rec.status = status
  redis.call('HSET', res, id, cjson.encode(rec))
  redis.call('ZADD', gone, now, id)
  ticket_close(rec.customer, id, false, rec.token)
  emit(kind or status, id, rec.seat, rec.customer)
end

local function release_due(n)
  local due = redis.call('ZRANGEBYSCORE', holds, '-inf', now, 'LIMIT', 0, n)
  for i = 1, #due do
    release(due[i], cjson.decode(redis.call('HGET', res, due[i])), 'EXPIRED')
  end
  return #due
end
