--[[ include: hold(id, option, seat, index, price, expires, t) creates a HELD reservation
  on a seat whose bit the caller has just set: the record, its expiry, the free count and the
  HELD event; the hold joins t, the customer's ticket record as the caller read it
  (ticket_get), under the current token, and the caller saves t once after its holds
  (ticket_set).
  needs locals: res, holds, free, customer, secret and the includes tickets, events ]]
local function hold(id, option, seat, index, price, expires, t)
  -- The record as cjson would write it, formatted directly (reserve's hot path): every value
  -- is digits or hex, checked by the engine, so nothing needs escaping.
  redis.call('HSET', res, id, string.format(
    '{"customer":"%s","option":"%s","seat":"%s","idx":%d,"price":%d,"status":"HELD",' ..
    '"token":"%s","expires":%d,"attempt":0}',
    customer, option, seat, index, price, secret, expires))
  redis.call('ZADD', holds, expires, id)
  redis.call('HINCRBY', free, option, -1)
  if t.token ~= secret then t.token, t.held = secret, 0 end
  t.held = t.held + 1
  t.ids[#t.ids + 1] = id
  emit('HELD', id, seat, customer)
end
