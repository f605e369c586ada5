#!lua
--[[
  Best available: hold `quantity` free seats next to each other in one row, trying the rows in
  the order given (the engine sends the option's rows best first: by price, then by row
  order), all in one atomic step, each seat its own reservation. A row whose free count is too
  small is skipped with one BITCOUNT; within a row BITPOS finds the next free seat (past the
  bitmap's end every place is free) and one BITFIELD GET reads the seats after it. The work is bounded (MAX_PROBES calls) even on a
  100,000-seat performance. Same token, ticket limit and rate limit as reserve.lua.

  KEYS[1]  tokens    hash  customerId -> "secret@activeUntilMs" or "secret:lastPollMs"
  KEYS[2]  active    zset  customerId -> ACTIVE token expiry (ms)
  KEYS[3]  layout    hash  optionId -> "start:count:version" of its seats in the bitmap
  KEYS[4]  taken     bits  seat index -> 1 while the seat is held or sold
  KEYS[5]  free      hash  optionId -> free seats
  KEYS[6]  holds     zset  reservation id -> hold expiry (ms)
  KEYS[7]  res       hash  reservation id -> JSON record
  KEYS[8]  gone      zset  closed reservation id -> closed at (ms)
  KEYS[9]  settings  hash  the concert's settings (include/settings.lua)
  KEYS[10] tickets   hash  customerId -> ticket record, the rate limit's bucket in it
                           (include/tickets.lua)
  KEYS[11] events    stream the concert's events

  ARGV[1]  customerId (from the token)
  ARGV[2]  token secret
  ARGV[3]  default waiting idle limit (ms)
  ARGV[4]  optionId
  ARGV[5]  quantity (1..8)
  ARGV[6]  default hold TTL (ms)
  ARGV[7]  default most tickets per customer (0: no limit)
  ARGV[8]  reserves a second per customer (0: no limit)
  ARGV[9]  burst of the rate limit
  ARGV[10] events kept in the stream (about)
  ARGV[11] version of the option's seat list the rows come from
  ARGV[12] new reservation ids, one per seat, comma-separated (32 hex chars each)
  ARGV[13..] per row, best first: first bitmap place, seats, first seat id, price (minor)

  Returns
    {0, expiresAtMs, row, offset}   held: the seats row's places offset .. offset+quantity-1
                                    (row: 1-based index into the rows given)
    {1} token unknown/expired   {2} token WAITING   {4} no such option in this concert
    {20, retryAfterMs} rate limited   {21, limit} the customer's ticket limit is reached
    {22} no `quantity` free seats next to each other in these rows
    {23} the option's seat list changed (reload it and call again)
]]
local tokens, active, layout, taken, free = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local holds, res, gone = KEYS[6], KEYS[7], KEYS[8]
local settings, tickets, events = KEYS[9], KEYS[10], KEYS[11]
local customer, secret, option, quantity = ARGV[1], ARGV[2], ARGV[4], tonumber(ARGV[5])
local per_second, burst, events_max = tonumber(ARGV[8]), tonumber(ARGV[9]), tonumber(ARGV[10])
local version = ARGV[11]
local SWEEP, MAX_PROBES = 100, 5000

-- @include clock

-- @include settings

local cfg = configured(settings, {idleMs = tonumber(ARGV[3]), holdMs = tonumber(ARGV[6]),
                                  maxTickets = tonumber(ARGV[7])})
local idle_ms = cfg.idleMs

-- @include token_entry

-- @include token_state

-- @include buckets

-- @include tickets

-- @include events

-- @include release

-- @include hold

local state = token_state()
if state ~= 0 then return {state} end
release_due(SWEEP)  -- first, so that the customer's own holds that ran out count no more
local t = ticket_get(customer)
local wait_ms, bucket = draw(t.bucket, per_second, burst)
if wait_ms > 0 then return {20, wait_ms} end
if cfg.maxTickets > 0 and t.paid + #t.ids + quantity > cfg.maxTickets then
  return {21, cfg.maxTickets}
end
t.bucket = bucket

-- Refused for the seats: the attempt still counts against the rate limit.
local function refused(code)
  if per_second > 0 then ticket_set(customer, t) end
  return {code}
end

local slice = redis.call('HGET', layout, option)
if not slice then return refused(4) end
if string.match(slice, ':(%w+)$') ~= version then return refused(23) end

-- The first free place in [from, last], or -1. BITPOS sees only the bitmap's bytes (and
-- answers 0 for a missing key): the places past its end are free.
local nbits = redis.call('STRLEN', taken) * 8
local function first_free(from, last)
  if from >= nbits then return from end
  local p = redis.call('BITPOS', taken, 0, from, math.min(last, nbits - 1), 'BIT')
  if p == -1 and last >= nbits then return nbits end
  return p
end

-- The first place p in [from, last] where `quantity` free seats start, or nil.
local probes = 0
local function run_in(from, last)
  while from + quantity - 1 <= last and probes < MAX_PROBES do
    local p = first_free(from, last)
    probes = probes + 1
    if p == -1 or p + quantity - 1 > last then return nil end
    local v = redis.call('BITFIELD', taken, 'GET', 'u' .. quantity, p)[1]
    probes = probes + 1
    if v == 0 then return p end
    local zeros = 0  -- the window's last taken seat is `zeros` places before its end
    while v % 2 == 0 do
      v = v / 2
      zeros = zeros + 1
    end
    from = p + quantity - zeros
  end
  return nil
end

local rows = (#ARGV - 12) / 4
for r = 1, rows do
  if probes >= MAX_PROBES then break end
  local start, count = tonumber(ARGV[9 + 4 * r]), tonumber(ARGV[10 + 4 * r])
  local last = start + count - 1
  probes = probes + 1
  if count >= quantity and
      count - redis.call('BITCOUNT', taken, start, last, 'BIT') >= quantity then
    local p = run_in(start, last)
    if p then
      local first_seat, price = tonumber(ARGV[11 + 4 * r]), tonumber(ARGV[12 + 4 * r])
      local expires, i = now + cfg.holdMs, 0
      for id in string.gmatch(ARGV[12], '%x+') do
        redis.call('SETBIT', taken, p + i, 1)
        hold(id, option, string.format('%d', first_seat + p - start + i), p + i, price,
             expires, t)
        i = i + 1
      end
      ticket_set(customer, t)
      return {0, expires, r, p - start}
    end
  end
end
return refused(22)
