--[[ include: pay_begin_step(k, now, stream, customer, token, stale_ms, res_id, offer_ms) ->
  pay step 1 on reservation res_id (32 hex) of the customer of the token whose seq is `token`:
  PAYING under a new attempt, or why not; its replies are lua/pay_begin.lua's. k: the
  concert's keys by name (tokens, active, res, holds, paying, taken, free, gone, tickets,
  concert, offers); stream: include/events; offer_ms: include/release. ]]
-- @include token_state
-- @include release
local function pay_begin_step(k, now, stream, customer, token, stale_ms, res_id, offer_ms)
  local raw = redis.call('HGET', k.res, res_id)
  local rec = raw and cjson.decode(raw)
  -- A sale's outcome is told to its customer even once the token has ended with it (the
  -- reservation res_id, 128 random bits, is what proves the asker).
  if rec and rec.customer == customer then
    if rec.status == 'PAID' then return {18, rec.price, rec.balance or -1} end
    if rec.status == 'REFUNDING' or rec.status == 'REFUNDED' then return {24} end
  end
  local state = token_state(k, customer, tonumber(token), now)
  if state ~= 0 then return {state} end
  if not rec or rec.customer ~= customer then return {7} end
  if rec.status == 'EXPIRED' then return {9} end
  if rec.status == 'CANCELLED' then return {15} end
  if rec.status == 'PAYING' then
    -- A PAYING record without its pay start is treated as stale: it must never stay stuck.
    if tonumber(redis.call('ZSCORE', k.paying, res_id) or 0) <= now - stale_ms then
      return {14, rec.attempt}
    end
    return {10}
  end
  if rec.expires <= now then
    release(k, now, stream, res_id, rec, 'EXPIRED', nil, offer_ms)
    return {9}
  end
  rec.status = 'PAYING'
  rec.attempt = rec.attempt + 1
  redis.call('HSET', k.res, res_id, cjson.encode(rec))
  redis.call('ZREM', k.holds, res_id)
  redis.call('ZADD', k.paying, now, res_id)
  return {0, rec.price, rec.attempt}
end
