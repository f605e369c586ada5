#!lua flags=allow-oom
--[[
  Cancel a hold: the seat is free again at once. Only the customer who holds it may cancel.

  Flag allow-oom: it frees a hold, which must be possible when Redis is full.

  KEYS[1]  tokens    hash  customerId -> "secret@activeUntilMs" or "secret:lastPollMs"
  KEYS[2]  active    zset  customerId -> ACTIVE token expiry (ms)
  KEYS[3]  res       hash  reservation id -> JSON record
  KEYS[4]  holds     zset  reservation id -> hold expiry (ms)
  KEYS[5]  taken     bits  seat index -> 1 while the seat is held or sold
  KEYS[6]  free      hash  optionId -> free seats
  KEYS[7]  gone      zset  closed reservation id -> closed at (ms)
  KEYS[8]  settings  hash  the concert's settings (include/settings.lua)
  KEYS[9]  tickets   hash  customerId -> ticket record (include/tickets.lua)
  KEYS[10] events    stream the concert's events

  ARGV[1] customerId (from the token)
  ARGV[2] token secret
  ARGV[3] default waiting idle limit (ms)
  ARGV[4] reservation id (32 hex chars)
  ARGV[5] events kept in the stream (about)

  Returns
    {0}   cancelled
    {1} token unknown/expired   {2} token WAITING   {7} no such reservation of this customer
    {8} already paid   {9} hold expired   {10} a pay is in progress   {15} already cancelled
]]
local tokens, active, res, holds = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local taken, free, gone = KEYS[5], KEYS[6], KEYS[7]
local settings, tickets, events = KEYS[8], KEYS[9], KEYS[10]
local customer, secret, id, events_max = ARGV[1], ARGV[2], ARGV[4], tonumber(ARGV[5])

-- @include clock

local idle_ms = tonumber(redis.call('HGET', settings, 'idleMs')) or tonumber(ARGV[3])

-- @include token_entry

-- @include token_state

-- @include tickets

-- @include events

-- @include release

local state = token_state()
if state ~= 0 then return {state} end
local raw = redis.call('HGET', res, id)
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
  release(id, rec, 'EXPIRED')
  return {9}
end
release(id, rec, 'CANCELLED')
return {0}
