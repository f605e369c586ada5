#!lua flags=allow-oom
--[[
  Cancel a hold: the seat is free again at once. Only the customer who holds it may cancel.

  Flag allow-oom: it frees a hold, which must be possible when Redis is full.

  KEYS[1]  tokens    hash  customerId -> "<seq>" (WAITING) or "<seq>@<activeUntilMs>"
  KEYS[2]  active    zset  customerId -> ACTIVE token expiry (ms)
  KEYS[3]  res       hash  reservation id -> JSON record
  KEYS[4]  holds     zset  reservation id -> hold expiry (ms)
  KEYS[5]  taken     bits  seat index -> 1 while the seat is held or sold
  KEYS[6]  free      hash  optionId -> free seats
  KEYS[7]  gone      zset  closed reservation id -> closed at (ms)
  KEYS[8]  settings  hash  the concert's settings (include/settings.lua)
  KEYS[9]  tickets   hash  customerId -> ticket record (include/tickets.lua)
  KEYS[10] events    stream the concert's events
  KEYS[11] concert   hash  live: the waiters (a seat that comes back while some wait is put
                           on offer to them)
  KEYS[12] offers    zset  seat index -> when it came back (include/offers.lua)

  ARGV[1] customerId (from the token)
  ARGV[2] the token's seq (its place in the queue; the engine checked its mac)
  ARGV[3] default waiting idle limit (ms)
  ARGV[4] res_id: the reservation's 32 hex (its reservationId is "<concertId>.<res_id>")
  ARGV[5] events kept in the stream (about)
  ARGV[6] default time a returned seat is on offer to the queue (ms)

  Returns
    {0}   cancelled
    {1} token unknown/expired   {2} token WAITING   {7} no such reservation of this customer
    {8} already paid   {9} hold expired   {10} a pay is in progress   {15} already cancelled
]]
-- @include clock
-- @include settings
-- @include token_state
-- @include events
-- @include release

local k = {tokens = KEYS[1], active = KEYS[2], res = KEYS[3], holds = KEYS[4], taken = KEYS[5],
           free = KEYS[6], gone = KEYS[7], settings = KEYS[8], tickets = KEYS[9],
           events = KEYS[10], concert = KEYS[11], offers = KEYS[12]}
local customer, token, res_id, events_max = ARGV[1], ARGV[2], ARGV[4], tonumber(ARGV[5])
local now = time_ms()
local cfg = configured(k.settings, {idleMs = tonumber(ARGV[3]), returnHoldMs = tonumber(ARGV[6])})
local stream = event_stream(k.events, events_max, now)

local state = token_state(k, customer, tonumber(token), now)
if state ~= 0 then return {state} end
local raw = redis.call('HGET', k.res, res_id)
if not raw then return {7} end
local rec = cjson.decode(raw)
if rec.customer ~= customer then return {7} end
if rec.status == 'PAID' or rec.status == 'REFUNDING' or rec.status == 'REFUNDED' then
  return {8}
end
if rec.status == 'PAYING' then return {10} end
if rec.status == 'EXPIRED' then return {9} end
if rec.status == 'CANCELLED' then return {15} end
if rec.expires <= now then
  release(k, now, stream, res_id, rec, 'EXPIRED', nil, cfg.returnHoldMs)
  return {9}
end
release(k, now, stream, res_id, rec, 'CANCELLED', nil, cfg.returnHoldMs)
return {0}
