#!lua flags=allow-oom
--[[
  Available seats of one concert option, as a range of the option's slice of the concert's
  taken-seat bitmap: bit (start + i) is set while the option's i-th seat (in listing order)
  is held or sold. The seats themselves change only by a reload of the catalogue (a new
  version), so the engine keeps their JSON (catalog.lua) and only the bits travel; a section
  is a range of the listing (offset, count), so a section's seats cost its own bytes only.
  Releases expired holds first, so a seat whose hold ran out is offered again. A seat on offer
  to the customers admitted after it came back (include/offers.lua) is named apart when this
  token may not take it, so that the engine shows it taken.

  Flag allow-oom: it only releases expired holds, and reads must keep working when Redis is full.

  KEYS[1]  tokens    hash  customerId -> "<seq>" (WAITING) or "<seq>@<activeUntilMs>"
  KEYS[2]  active    zset  customerId -> ACTIVE token expiry (ms)
  KEYS[3]  layout    hash  optionId -> "start:count:version" of its seats in the bitmap
  KEYS[4]  holds     zset  reservation id -> hold expiry (ms)
  KEYS[5]  res       hash  reservation id -> JSON record
  KEYS[6]  taken     bits  seat index -> 1 while the seat is held or sold
  KEYS[7]  free      hash  optionId -> free seats
  KEYS[8]  gone      zset  closed reservation id -> closed at (ms)
  KEYS[9]  settings  hash  the concert's settings (include/settings.lua)
  KEYS[10] tickets   hash  customerId -> ticket record (include/tickets.lua)
  KEYS[11] events    stream the concert's events
  KEYS[12] concert   hash  live: the waiters (a seat that comes back while some wait is put
                           on offer to them)
  KEYS[13] offers    zset  seat index -> when it came back (include/offers.lua)

  ARGV[1] customerId (from the token)
  ARGV[2] the token's seq (its place in the queue; the engine checked its mac)
  ARGV[3] default waiting idle limit (ms)
  ARGV[4] optionId
  ARGV[5] first seat of the range, as an offset in the option's listing (0: from the first)
  ARGV[6] seats in the range (-1: to the last)
  ARGV[7] events kept in the stream (about)
  ARGV[8] default time a returned seat is on offer to the queue (ms)
  ARGV[9] default active TTL (ms): a token became ACTIVE its TTL before it ends

  Returns
    {0, version, start, count, bits, index, ...}
                                       start: the bitmap place of the range's first seat;
                                       bits: bytes (start >> 3) to ((start + count - 1) >> 3)
                                       of the bitmap (shorter where the bitmap ends: missing
                                       bits are 0); version: that of the option's seat list;
                                       index, ...: places in the range on offer that this
                                       token may not take
    {1} token unknown/expired   {2} token WAITING   {4} no such option in this concert
]]
-- @include clock
-- @include settings
-- @include token_state
-- @include events
-- @include release
-- @include offers

local k = {tokens = KEYS[1], active = KEYS[2], layout = KEYS[3], holds = KEYS[4],
           res = KEYS[5], taken = KEYS[6], free = KEYS[7], gone = KEYS[8], settings = KEYS[9],
           tickets = KEYS[10], events = KEYS[11], concert = KEYS[12], offers = KEYS[13]}
local customer, token, option = ARGV[1], ARGV[2], ARGV[4]
local offset, wanted, events_max = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local SWEEP = 100
local now = time_ms()
local cfg = configured(k.settings, {idleMs = tonumber(ARGV[3]), returnHoldMs = tonumber(ARGV[8]),
                                    activeTtlMs = tonumber(ARGV[9])})

local state, active_until = token_state(k, customer, tonumber(token), now)
if state ~= 0 then return {state} end

release_due(k, now, event_stream(k.events, events_max, now), SWEEP, cfg.returnHoldMs)

local slice = redis.call('HGET', k.layout, option)
if not slice then return {4} end
local start, count, version = string.match(slice, '^(%d+):(%d+):(%w+)$')
start, count = tonumber(start), tonumber(count)
offset = math.min(offset, count)
count = count - offset
if wanted >= 0 then count = math.min(count, wanted) end
start = start + offset
if count == 0 then return {0, version, start, 0, ''} end
local out = {0, version, start, count, redis.call('GETRANGE', k.taken, math.floor(start / 8),
                                                  math.floor((start + count - 1) / 8))}
local offered = offers_in(k, now, cfg.returnHoldMs, start, start + count - 1)
for i = 1, #offered, 2 do
  if not may_take(active_until - cfg.activeTtlMs, offered[i + 1]) then
    out[#out + 1] = offered[i]
  end
end
return out
