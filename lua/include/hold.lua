--[[ include: hold(k, stream, customer, token, res_id, option, seat, index, price, expires, t)
  creates a HELD reservation res_id (32 hex) of `customer`, under the token whose seq is
  `token` (a string of digits), on a seat whose bit the caller has just set: the record, its
  expiry, the free count (k.res, k.holds, k.free) and the HELD event; the hold joins t, the
  customer's ticket record as the caller read it (include/tickets: ticket_get), under the
  current token, and the caller saves t once after its holds (ticket_set). ]]
local function hold(k, stream, customer, token, res_id, option, seat, index, price, expires, t)
  -- The record as cjson would write it, formatted directly (reserve's hot path): every value
  -- is digits or hex, checked by the engine, so nothing needs escaping.
  redis.call('HSET', k.res, res_id, string.format(
    '{"customer":"%s","option":"%s","seat":"%s","idx":%d,"price":%d,"status":"HELD",' ..
    '"token":"%s","expires":%d,"attempt":0}',
    customer, option, seat, index, price, token, expires))
  redis.call('ZADD', k.holds, expires, res_id)
  redis.call('HINCRBY', k.free, option, -1)
  if t.token ~= token then t.token, t.held, t.cancelled = token, 0, 0 end
  t.held = t.held + 1
  t.ids[#t.ids + 1] = res_id
  stream.reservation('HELD', res_id, seat, customer)
end
