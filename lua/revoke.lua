#!lua flags=allow-oom
--[[
  An operator revokes a customer's token for a concert: the token ends at once (its next use
  is 401; a TOKEN_REVOKED event) and the customer's open holds are released (a REVOKED event
  each, with its reservation res_id). A hold being paid
  (PAYING) is left to its pay, marked `revoked`: a pay that completes sells it, a pay that
  fails or is rolled back releases it (REVOKED) instead of holding it again.

  Flag allow-oom: it only frees.

  KEYS[1]  tokens    hash  customerId -> "<seq>" (WAITING) or "<seq>@<activeUntilMs>" (ACTIVE)
  KEYS[2]  seqs      hash  seq -> customerId of a WAITING token
  KEYS[3]  active    zset  customerId -> ACTIVE token expiry (ms)
  KEYS[4]  res       hash  reservation id -> JSON record
  KEYS[5]  holds     zset  reservation id -> hold expiry (ms)
  KEYS[6]  taken     bits  seat index -> 1 while the seat is held or sold
  KEYS[7]  free      hash  optionId -> free seats
  KEYS[8]  gone      zset  closed reservation id -> closed at (ms)
  KEYS[9]  tickets   hash  customerId -> ticket record (include/tickets.lua)
  KEYS[10] events    stream the concert's events
  KEYS[11] offers    zset  seat index -> when it came back (include/offers.lua): a released
                           hold's seat is offered to those waiting (include/release.lua)
  KEYS[12] settings  hash  the concert's settings (include/settings.lua)
  KEYS[13] concert   hash  live: the waiters (include/admission)
  KEYS[14] left      list  the seqs of the last waiters who left (include/waiters)
  KEYS[15] departed  bits  seq -> 1 once its waiter left (include/waiters)

  ARGV[1] customerId
  ARGV[2] events kept in the stream (about)
  ARGV[3] default time a returned seat is on offer to the queue (ms)

  Returns
    {0, hadToken, holdsReleased, holdsBeingPaid}
]]
-- @include clock
-- @include settings
-- @include events
-- @include release
-- @include waiters

local k = {tokens = KEYS[1], seqs = KEYS[2], active = KEYS[3], res = KEYS[4],
           holds = KEYS[5], taken = KEYS[6], free = KEYS[7], gone = KEYS[8], tickets = KEYS[9],
           events = KEYS[10], offers = KEYS[11], settings = KEYS[12], concert = KEYS[13],
           left = KEYS[14], departed = KEYS[15]}
local customer, events_max = ARGV[1], tonumber(ARGV[2])
local now = time_ms()
local offer_ms = configured(k.settings, {returnHoldMs = tonumber(ARGV[3])}).returnHoldMs
local stream = event_stream(k.events, events_max, now)

local released, paying = 0, 0
for _, res_id in ipairs(ticket_get(k, customer).ids) do
  local raw = redis.call('HGET', k.res, res_id)
  local rec = raw and cjson.decode(raw)
  if rec and rec.status == 'HELD' then
    release(k, now, stream, res_id, rec, 'CANCELLED', 'REVOKED', offer_ms)
    released = released + 1
  elseif rec and rec.status == 'PAYING' then
    rec.revoked = true
    redis.call('HSET', k.res, res_id, cjson.encode(rec))
    paying = paying + 1
  elseif not rec then
    ticket_close(k, customer, res_id, false)  -- a stale entry: nothing left to release
  end
end
local kind, seq = entry_of(redis.call('HGET', k.tokens, customer))
if kind == 'W' then leave_queue(k, customer, seq) end
local had = redis.call('HDEL', k.tokens, customer) == 1 or kind == 'W'
redis.call('ZREM', k.active, customer)
if had then stream.token_revoked(customer) end
return {0, had and 1 or 0, released, paying}
