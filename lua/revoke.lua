#!lua flags=allow-oom
--[[
  An operator revokes a customer's token for a concert: the token ends at once (its next use
  is 401) and the customer's open holds are released (REVOKED events). A hold being paid
  (PAYING) is left to its pay, which completes or rolls back by itself.

  Flag allow-oom: it only frees.

  KEYS[1]  tokens    hash  customerId -> secret (ACTIVE) or "secret:lastPollMs" (WAITING)
  KEYS[2]  waiting   zset  customerId -> queue place
  KEYS[3]  active    zset  customerId -> ACTIVE token expiry (ms)
  KEYS[4]  held      hash  customerId -> open holds under the current token
  KEYS[5]  res       hash  reservation id -> JSON record
  KEYS[6]  holds     zset  reservation id -> hold expiry (ms)
  KEYS[7]  taken     bits  seat index -> 1 while the seat is held or sold
  KEYS[8]  free      hash  optionId -> free seats
  KEYS[9]  gone      zset  closed reservation id -> closed at (ms)
  KEYS[10] tickets   hash  customerId -> "<paid>|<open ids>" (include/tickets.lua)
  KEYS[11] events    stream the concert's events

  ARGV[1] customerId
  ARGV[2] events kept in the stream (about)

  Returns
    {0, hadToken, holdsReleased, holdsBeingPaid}
]]
local tokens, waiting, active, held, res = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local holds, taken, free, gone, tickets, events = KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10],
  KEYS[11]
local customer, events_max = ARGV[1], tonumber(ARGV[2])

-- @include clock

-- @include tickets

-- @include events

-- @include release

local released, paying = 0, 0
local _, open = tickets_of(customer)
for _, id in ipairs(open) do
  local raw = redis.call('HGET', res, id)
  local rec = raw and cjson.decode(raw)
  if rec and rec.status == 'HELD' then
    release(id, rec, 'CANCELLED', 'REVOKED')
    released = released + 1
  elseif rec and rec.status == 'PAYING' then
    paying = paying + 1
  elseif not rec then
    ticket_close(customer, id, false)  -- a stale entry: nothing left to release
  end
end
local had = redis.call('HDEL', tokens, customer)
redis.call('ZREM', waiting, customer)
redis.call('ZREM', active, customer)
redis.call('HDEL', held, customer)
if had == 1 then emit('REVOKED', '', '', customer) end
return {0, had, released, paying}
