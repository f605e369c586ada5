#!lua
--[[
  Hold a seat for the customer of an ACTIVE token, for the hold TTL. Of any number of
  concurrent holds of one seat exactly one wins. A customer's open holds plus paid seats in
  the concert never pass maxTicketsPerCustomer; reserves are rate limited per customer.
  Releases expired holds when one may be in the way. One read and one write of the
  customer's ticket record (tickets, the token's holds and the rate limit's bucket together:
  the hot path's cost).

  KEYS[1]  tokens    hash  customerId -> "<seq>" (WAITING) or "<seq>@<activeUntilMs>"
  KEYS[2]  active    zset  customerId -> ACTIVE token expiry (ms)
  KEYS[3]  options   hash  optionId -> date
  KEYS[4]  seats     hash  seatId -> "number:price:index" of this option (price in minor units)
  KEYS[5]  taken     bits  seat index -> 1 while the seat is held or sold
  KEYS[6]  free      hash  optionId -> free seats
  KEYS[7]  holds     zset  reservation id -> hold expiry (ms)
  KEYS[8]  res       hash  reservation id -> JSON record
  KEYS[9]  gone      zset  closed reservation id -> closed at (ms)
  KEYS[10] settings  hash  the concert's settings (include/settings.lua)
  KEYS[11] tickets   hash  customerId -> ticket record, the rate limit's bucket in it
                           (include/tickets.lua)
  KEYS[12] events    stream the concert's events
  KEYS[13] concert   hash  live: the waiters (a seat that comes back while some wait is put
                           on offer to them)
  KEYS[14] offers    zset  seat index -> when it came back (include/offers.lua)

  ARGV[1]  customerId (from the token)
  ARGV[2]  the token's seq (its place in the queue; the engine checked its mac)
  ARGV[3]  default waiting idle limit (ms)
  ARGV[4]  optionId
  ARGV[5]  seatId
  ARGV[6]  res_id of the new reservation (32 hex chars)
  ARGV[7]  default hold TTL (ms)
  ARGV[8]  default most tickets per customer (0: no limit)
  ARGV[9]  reserves a second per customer (0: no limit)
  ARGV[10] burst of the rate limit
  ARGV[11] events kept in the stream (about)
  ARGV[12] default time a returned seat is on offer to the queue (ms)
  ARGV[13] default active TTL (ms): a token became ACTIVE its TTL before it ends

  Returns
    {0, priceMinor, expiresAtMs}
    {1} token unknown/expired   {2} token WAITING   {4} no such option in this concert
    {5} no such seat in this option   {6} seat held or sold, or on offer to the customers
    admitted after it came back (include/offers.lua) and this one is not
    {20, retryAfterMs} rate limited   {21, limit} the customer's ticket limit is reached
    {30, limit} this token's cancels reached their limit (include/tickets: cancels_over)
]]
-- @include clock
-- @include settings
-- @include token_state
-- @include buckets
-- @include events
-- @include release
-- @include hold
-- @include offers

local k = {tokens = KEYS[1], active = KEYS[2], options = KEYS[3], seats = KEYS[4],
           taken = KEYS[5], free = KEYS[6], holds = KEYS[7], res = KEYS[8], gone = KEYS[9],
           settings = KEYS[10], tickets = KEYS[11], events = KEYS[12], concert = KEYS[13],
           offers = KEYS[14]}
local customer, token = ARGV[1], ARGV[2]
local option, seat, res_id = ARGV[4], ARGV[5], ARGV[6]
local per_second, burst, events_max = tonumber(ARGV[9]), tonumber(ARGV[10]), tonumber(ARGV[11])
local SWEEP = 100
local now = time_ms()
local cfg = configured(k.settings, {idleMs = tonumber(ARGV[3]), holdMs = tonumber(ARGV[7]),
                                    maxTickets = tonumber(ARGV[8]),
                                    returnHoldMs = tonumber(ARGV[12]),
                                    activeTtlMs = tonumber(ARGV[13])})
local stream = event_stream(k.events, events_max, now)

local state, active_until = token_state(k, customer, tonumber(token), now)
if state ~= 0 then return {state} end
local t = ticket_get(k, customer)
local wait_ms, bucket = draw(t.bucket, per_second, burst, now)
if wait_ms > 0 then return {20, wait_ms} end

-- Holds whose time is up are released here only when one may stand in the way (the seat, or
-- the customer's own holds at the limit): the tick and every seat read release them too, and
-- the hot path saves the sweep. Once at most; the record is read again after it.
local swept = false
local function sweep()
  if swept then return false end
  swept = true
  if release_due(k, now, stream, SWEEP, cfg.returnHoldMs) == 0 then return false end
  t = ticket_get(k, customer)
  return true
end

local function save()  -- the record, with the rate limit's bucket as drawn
  t.bucket = bucket
  ticket_set(k, customer, t)
end

-- Refused (the ticket limit, the seat): the attempt still counts against the rate limit.
local function refused(code, ...)
  if per_second > 0 then save() end
  return {code, ...}
end

-- A reserve-and-cancel loop keeps a closed record for each hold: a token's cancels are bounded
-- (include/tickets.lua; its own expired holds, released first, count as none).
local cancel_limit = cancels_over(t, token, cfg.maxTickets, 1)
if cancel_limit and not (sweep() and not cancels_over(t, token, cfg.maxTickets, 1)) then
  return refused(30, cancel_limit)
end
if cfg.maxTickets > 0 and t.paid + #t.ids >= cfg.maxTickets and
    not (sweep() and t.paid + #t.ids < cfg.maxTickets) then
  return refused(21, cfg.maxTickets)
end

local entry = redis.call('HGET', k.seats, seat)
-- Only now tell an unknown option from an unknown seat (one call less); an option res_id that is
-- not digits is unknown (hold() writes it into the record as is).
if not entry or string.find(option, '%D') then
  if redis.call('HEXISTS', k.options, option) == 0 then return refused(4) end
  return refused(5)
end

local price, index = string.match(entry, '^%d+:(%d+):(%d+)$')
if redis.call('SETBIT', k.taken, index, 1) == 1 and
    not (sweep() and redis.call('SETBIT', k.taken, index, 1) == 0) then
  return refused(6)
end
price, index = tonumber(price), tonumber(index)
local returned = offered(k, index, now, cfg.returnHoldMs)
if returned then  -- on offer: to a customer admitted since it came back only
  if not may_take(active_until - cfg.activeTtlMs, returned) then
    redis.call('SETBIT', k.taken, index, 0)
    return refused(6)
  end
  redis.call('ZREM', k.offers, index)
end
local expires = now + cfg.holdMs
hold(k, stream, customer, token, res_id, option, seat, index, price, expires, t)
save()
return {0, price, expires}
