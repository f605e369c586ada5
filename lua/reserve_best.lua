#!lua
--[[
  Best available: hold `quantity` free seats next to each other in one row, trying the rows in
  the order given (the engine sends the option's rows best first: by price, then by row
  order), all in one atomic step, each seat its own reservation. The rows come in blocks that
  follow each other in the bitmap; a block (or half of one, and so on down to a row) whose
  free count is too small is skipped with one BITCOUNT, so the full rows in front of the
  free ones cost O(log rows), not a call each. Within a row BITPOS finds the next free seat
  (past the bitmap's end every place is free) and one BITFIELD GET reads the seats after it.
  The work is bounded (MAX_PROBES calls) even on a 100,000-seat performance: where free
  seats are scattered in every row (so no block can be skipped), blocks of up to 8 rows are
  counted row by row, for about 1.3 counts a row. Same token, ticket limit and rate limit as
  reserve.lua.

  KEYS[1]  tokens    hash  customerId -> "<seq>" (WAITING) or "<seq>@<activeUntilMs>"
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
  KEYS[12] concert   hash  live: the waiters (a seat that comes back while some wait is put
                           on offer to them)
  KEYS[13] offers    zset  seat index -> when it came back (include/offers.lua)

  ARGV[1]  customerId (from the token)
  ARGV[2]  the token's seq (its place in the queue; the engine checked its mac)
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
  ARGV[13] the rows, best first: each row's first bitmap place, 8 hex digits a row
  ARGV[14] the blocks of those rows, best first, comma-separated, each
           "firstRow:lastRow:lastPlace:firstSeatId:price": rows (1-based) next to each
           other in the bitmap, seat ids consecutive, one price (minor units)
  ARGV[15] default time a returned seat is on offer to the queue (ms)
  ARGV[16] default active TTL (ms): a token became ACTIVE its TTL before it ends

  Returns
    {0, expiresAtMs, row, offset}   held: the seats row's places offset .. offset+quantity-1
                                    (row: 1-based index into the rows given)
    {1} token unknown/expired   {2} token WAITING   {4} no such option in this concert
    {20, retryAfterMs} rate limited   {21, limit} the customer's ticket limit is reached
    {30, limit} this token's cancels reached their limit (include/tickets: cancels_over)
    {22} no `quantity` free seats next to each other in these rows
    {23} the option's seat list changed (reload it and call again)
]]
-- @include clock
-- @include settings
-- @include token_state
-- @include buckets
-- @include events
-- @include release
-- @include hold
-- @include offers

local k = {tokens = KEYS[1], active = KEYS[2], layout = KEYS[3], taken = KEYS[4],
           free = KEYS[5], holds = KEYS[6], res = KEYS[7], gone = KEYS[8], settings = KEYS[9],
           tickets = KEYS[10], events = KEYS[11], concert = KEYS[12], offers = KEYS[13]}
local customer, token, option, quantity = ARGV[1], ARGV[2], ARGV[4], tonumber(ARGV[5])
local per_second, burst, events_max = tonumber(ARGV[8]), tonumber(ARGV[9]), tonumber(ARGV[10])
local version = ARGV[11]
local SWEEP, MAX_PROBES = 100, 5000
local taken = k.taken
local now = time_ms()
local cfg = configured(k.settings, {idleMs = tonumber(ARGV[3]), holdMs = tonumber(ARGV[6]),
                                    maxTickets = tonumber(ARGV[7]),
                                    returnHoldMs = tonumber(ARGV[15]),
                                    activeTtlMs = tonumber(ARGV[16])})
local stream = event_stream(k.events, events_max, now)

local state, active_until = token_state(k, customer, tonumber(token), now)
if state ~= 0 then return {state} end
-- First: the customer's own expired holds count no more.
release_due(k, now, stream, SWEEP, cfg.returnHoldMs)
local t = ticket_get(k, customer)
local wait_ms, bucket = draw(t.bucket, per_second, burst, now)
if wait_ms > 0 then return {20, wait_ms} end
t.bucket = bucket

-- Refused (the ticket limit, the seats): the attempt still counts against the rate limit.
local function refused(code, ...)
  if per_second > 0 then ticket_set(k, customer, t) end
  return {code, ...}
end

-- A reserve-and-cancel loop keeps a closed record for each hold: a token's cancels are bounded
-- (include/tickets.lua).
local cancel_limit = cancels_over(t, token, cfg.maxTickets, quantity)
if cancel_limit then return refused(30, cancel_limit) end
if cfg.maxTickets > 0 and t.paid + #t.ids + quantity > cfg.maxTickets then
  return refused(21, cfg.maxTickets)
end

local slice = redis.call('HGET', k.layout, option)
if not slice then return refused(4) end
if string.match(slice, ':(%w+)$') ~= version then return refused(23) end

-- Seats on offer to the customers admitted after they came back (include/offers.lua) that
-- this token may not take look taken to the search: their bits are set for the call and
-- cleared before it returns (one script: nobody else sees them set).
local first_place, places = string.match(slice, '^(%d+):(%d+):')
first_place = tonumber(first_place)
local on_offer = offers_in(k, now, cfg.returnHoldMs, first_place,
                           first_place + tonumber(places) - 1)
local blocked, mine = {}, {}
for i = 1, #on_offer, 2 do
  if may_take(active_until - cfg.activeTtlMs, on_offer[i + 1]) then
    mine[on_offer[i]] = true
  else
    blocked[#blocked + 1] = on_offer[i]
    redis.call('SETBIT', taken, on_offer[i], 1)
  end
end
local function unblock()
  for _, index in ipairs(blocked) do redis.call('SETBIT', taken, index, 0) end
end

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

local starts, last_row = ARGV[13], 0  -- last_row: the last row of the block searched
local function start_of(r) return tonumber(string.sub(starts, 8 * r - 7, 8 * r), 16) end

-- The places of rows a..b of the block searched, whose last row ends at place `last`.
local function span(a, b, last)
  if b < last_row then return start_of(a), start_of(b + 1) - 1 end
  return start_of(a), last
end

-- Whether places lo..hi have `quantity` free seats at all (one probe).
local function enough(lo, hi)
  probes = probes + 1
  return hi - lo + 1 - redis.call('BITCOUNT', taken, lo, hi, 'BIT') >= quantity
end

-- The best row among rows a..b of a block with `quantity` free seats together: row, its
-- first place, the run's first place; or nil.
local function search(a, b, last)
  if probes >= MAX_PROBES then return nil end
  local lo, hi = span(a, b, last)
  if not enough(lo, hi) then return nil end
  if a == b then
    local p = run_in(lo, hi)
    return p and a, lo, p
  end
  if b - a < 8 then  -- a few rows: one by one, as halving them would cost more counts
    for r = a, b do
      if probes >= MAX_PROBES then return nil end
      local rlo, rhi = span(r, r, last)
      local p = enough(rlo, rhi) and run_in(rlo, rhi)
      if p then return r, rlo, p end
    end
    return nil
  end
  local m = math.floor((a + b) / 2)
  local r, at, p = search(a, m, last)
  if r then return r, at, p end
  return search(m + 1, b, last)
end

for a, b, last, first_seat, price in string.gmatch(ARGV[14], '(%d+):(%d+):(%d+):(%d+):(%d+)') do
  last_row = tonumber(b)
  local r, at, p = search(tonumber(a), last_row, tonumber(last))
  if r then
    local seat0 = tonumber(first_seat) + p - start_of(tonumber(a))
    local expires, i = now + cfg.holdMs, 0
    for res_id in string.gmatch(ARGV[12], '%x+') do
      redis.call('SETBIT', taken, p + i, 1)
      hold(k, stream, customer, token, res_id, option, string.format('%d', seat0 + i), p + i,
           tonumber(price), expires, t)
      if mine[p + i] then redis.call('ZREM', k.offers, p + i) end
      i = i + 1
    end
    ticket_set(k, customer, t)
    unblock()
    return {0, expires, r, p - at}
  end
  if probes >= MAX_PROBES then break end
end
unblock()
return refused(22)
