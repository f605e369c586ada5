--[[ include: hold(id, option, seat, index, price, expires, open) creates a HELD reservation
  on a seat whose bit the caller has just set: the record, its expiry, the free count, the
  token's count and the HELD event; the id joins `open`, the customer's open holds as the
  caller read them (tickets_of), which the caller saves once after its holds (tickets_put).
  needs locals: res, holds, free, held, customer, secret and the includes tickets, events ]]
local function hold(id, option, seat, index, price, expires, open)
  redis.call('HSET', res, id, cjson.encode({
    customer = customer, option = option, seat = seat, idx = index, price = price,
    status = 'HELD', token = secret, expires = expires, attempt = 0,
  }))
  redis.call('ZADD', holds, expires, id)
  redis.call('HINCRBY', free, option, -1)
  redis.call('HINCRBY', held, customer, 1)
  open[#open + 1] = id
  emit('HELD', id, seat, customer)
end
