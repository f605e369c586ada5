--[[ include: pay_finish_step(k, now, stream, res_id, attempt, outcome, balance, offer_ms) ->
  pay step 3 for one attempt of reservation res_id (32 hex): PAID or REFUSED; its replies are
  lua/pay_finish.lua's. k: the concert's keys by name (res, paying, holds, taken, free,
  tokens, active, concert, gone, tickets, offers); stream: include/events;
  offer_ms: include/release. ]]
-- @include release
-- @include token_entry
local function pay_finish_step(k, now, stream, res_id, attempt, outcome, balance, offer_ms)
  local raw = redis.call('HGET', k.res, res_id)
  if not raw then return {7} end
  local rec = cjson.decode(raw)

  if outcome == 'PAID' then
    if rec.status == 'PAID' and rec.attempt == attempt then return {0, 0} end
    -- A debit belongs to the attempt that made it, and that attempt holds the seat (PAYING)
    -- until this step. Anything else is a debit without a sale: the caller refunds it.
    if rec.status ~= 'PAYING' or rec.attempt ~= attempt then return {17} end
    rec.status = 'PAID'
    rec.revoked = nil
    rec.balance = balance
    rec.paid = now
    redis.call('HSET', k.res, res_id, cjson.encode(rec))
    redis.call('ZREM', k.paying, res_id)
    redis.call('ZADD', k.gone, now, res_id)
    redis.call('HINCRBY', k.concert, 'sold', 1)
    local left = ticket_close(k, rec.customer, res_id, true, rec.token)
    stream.reservation('PAID', res_id, rec.seat, rec.customer)
    local entry = left == 0 and redis.call('HGET', k.tokens, rec.customer)
    if entry and select(2, entry_of(entry)) == tonumber(rec.token) then
      redis.call('ZREM', k.active, rec.customer)  -- its last hold paid: the token is done
      redis.call('HDEL', k.tokens, rec.customer)
      return {0, 1}
    end
    return {0, 0}
  end

  if rec.status ~= 'PAYING' or rec.attempt ~= attempt then return {0, 0} end
  redis.call('ZREM', k.paying, res_id)
  if rec.revoked then  -- its customer was revoked during the pay (lua/revoke.lua)
    rec.revoked = nil
    release(k, now, stream, res_id, rec, 'CANCELLED', 'REVOKED', offer_ms)
  elseif rec.expires > now then
    rec.status = 'HELD'
    redis.call('HSET', k.res, res_id, cjson.encode(rec))
    redis.call('ZADD', k.holds, rec.expires, res_id)
  else
    release(k, now, stream, res_id, rec, 'EXPIRED', nil, offer_ms)
  end
  return {0, 0}
end
