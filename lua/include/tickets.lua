--[[ include: a customer's tickets in this concert, in the tickets hash as
  "<paid seats>|<open reservation id>,<open reservation id>,..." (open: held or paying; ids
  are 32 hex). tickets_of(c) -> paid, {ids}; tickets_put(c, paid, ids); ticket_close(c, id, paid):
  the hold is gone, and when paid it counts as a sold ticket; ticket_unpaid(c): a sold
  ticket refunded. Open holds plus paid seats never exceed maxTicketsPerCustomer.
  needs locals: tickets ]]
local function tickets_of(customer)
  local t = redis.call('HGET', tickets, customer)
  if not t then return 0, {} end
  local paid, list = string.match(t, '^(%d+)|(.*)$')
  local ids = {}
  for id in string.gmatch(list, '%x+') do ids[#ids + 1] = id end
  return tonumber(paid), ids
end

local function tickets_put(customer, paid, ids)
  if paid == 0 and #ids == 0 then
    redis.call('HDEL', tickets, customer)
  else
    redis.call('HSET', tickets, customer, paid .. '|' .. table.concat(ids, ','))
  end
end

local function ticket_close(customer, id, sold)
  local paid, ids = tickets_of(customer)
  for i = #ids, 1, -1 do
    if ids[i] == id then table.remove(ids, i) end
  end
  tickets_put(customer, paid + (sold and 1 or 0), ids)
end

local function ticket_unpaid(customer)
  local paid, ids = tickets_of(customer)
  tickets_put(customer, math.max(0, paid - 1), ids)
end
