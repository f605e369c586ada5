--[[ include: release(k, now, stream, res_id, rec, status, kind, offer_ms) frees a hold's seat,
  closes the reservation res_id (32 hex; status EXPIRED or CANCELLED), uncounts it from the
  customer's tickets (and the token it was made under), and adds the event `kind` (default:
  the status) to `stream` (include/events). It is dated in k.gone by its close, less the
  concert's closedshift when no pay touched it (kept CLOSED_HOLD_KEEP_SECONDS, not a day).
  When customers wait in the queue (include/waiting) and offer_ms > 0 (returnHoldSeconds),
  the seat is put on offer (k.offers: its index -> now):
  for offer_ms only customers admitted from now on may hold it (include/offers).
  release_due(k, now, stream, n, offer_ms) releases at most n holds whose time is up and
  returns how many. k: the concert's keys by name (taken, free, holds, res, gone, tickets,
  concert, offers). ]]
-- @include tickets
-- @include waiting
local function release(k, now, stream, res_id, rec, status, kind, offer_ms)
  redis.call('SETBIT', k.taken, rec.idx, 0)
  redis.call('HINCRBY', k.free, rec.option, 1)
  redis.call('ZREM', k.holds, res_id)
  rec.status = status
  redis.call('HSET', k.res, res_id, cjson.encode(rec))
  -- Dated in the closed set by when the tick should purge it: a hold no pay touched has no
  -- pay records and goes sooner (the concert's closedshift, lua/admit.lua).
  local shift = rec.attempt == 0 and tonumber(redis.call('HGET', k.concert, 'closedshift'))
  redis.call('ZADD', k.gone, now - (shift or 0), res_id)
  -- A customer's cancel counts against its token (an operator's revoke, kind REVOKED, not).
  ticket_close(k, rec.customer, res_id, false, rec.token, status == 'CANCELLED' and not kind)
  stream.reservation(kind or status, res_id, rec.seat, rec.customer)
  if offer_ms > 0 and waiting_count(k.concert) > 0 then
    redis.call('ZADD', k.offers, now, rec.idx)
  end
end

local function release_due(k, now, stream, n, offer_ms)
  local due = redis.call('ZRANGEBYSCORE', k.holds, '-inf', now, 'LIMIT', 0, n)
  for i = 1, #due do
    release(k, now, stream, due[i], cjson.decode(redis.call('HGET', k.res, due[i])), 'EXPIRED',
            nil, offer_ms)
  end
  return #due
end
