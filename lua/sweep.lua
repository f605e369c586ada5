#!lua flags=allow-oom
--[[
  Drop idle WAITING tokens (not seen in this period or the last: include/waiters) from one
  slice of a concert's queue, walking its seqs from a cursor: the pre-queue's (prefirst ..
  premax, in seq order) and the line's (from head). A slice reads its seqs' bits of the two
  seen bitmaps with two GETRANGEs and looks up only the seqs seen in neither, with one HMGET;
  seqs that joined this period or the last are not idle (include/waiters's fresh_from). The tick calls
  it as often as it takes to walk the queue about twice per idle limit (engine/tick.py), each
  call bounded by the slice.

  Flag allow-oom: it frees memory, so it must run when Redis is full.

  KEYS[1] concert   hash  the queue's fields (include/admission)
  KEYS[2] tokens    hash  customerId -> "<seq>" (WAITING) or "<seq>@<activeUntilMs>" (ACTIVE)
  KEYS[3] seqs      hash  seq -> customerId of a WAITING token
  KEYS[4] seen0     bits  seq -> polled in a period p with p % 3 == 0
  KEYS[5] seen1     bits  the same, p % 3 == 1
  KEYS[6] seen2     bits  the same, p % 3 == 2
  KEYS[7] rate      hash  field cursor: the next seq the walk looks at
  KEYS[8] settings  hash  the concert's settings (include/settings.lua)
  KEYS[9] left      list  the seqs of the last waiters who left (include/waiters)
  KEYS[10] departed  bits  seq -> 1 once its waiter left (include/waiters)

  ARGV[1] default waiting idle limit (ms)
  ARGV[2] slice: seqs looked at in this call

  Returns
    {0, dropped, looked, span}   span: the seqs a whole walk looks at (the pre-queue's and
                                 the line's, passed or not); the cursor went back to the
                                 start when looked < slice
]]
-- @include clock
-- @include settings
-- @include waiters

local k = {concert = KEYS[1], tokens = KEYS[2], seqs = KEYS[3], seen0 = KEYS[4],
           seen1 = KEYS[5], seen2 = KEYS[6], rate = KEYS[7], settings = KEYS[8], left = KEYS[9],
           departed = KEYS[10]}
local n = tonumber(ARGV[2])
local now = time_ms()
local idle_ms = configured(k.settings, {idleMs = tonumber(ARGV[1])}).idleMs
local period = math.floor(now / idle_ms)

local c = redis.call('HMGET', k.concert, 'seq', 'head', 'prefirst', 'premax', 'prehead',
                     'seen0', 'seen1', 'seen2')
local stamps = {c[6], c[7], c[8]}
local last, head = tonumber(c[1]) or 0, tonumber(c[2]) or 1
local prefirst, premax = tonumber(c[3]), tonumber(c[4])
if premax and prefirst and (tonumber(c[5]) or 0) > premax - prefirst then
  prefirst = nil  -- every pre-queue place passed: nothing of it left to walk
end
local first = head
if prefirst then first = math.min(prefirst, head) end  -- the pre-queue, then the line
if premax then head = math.max(head, premax + 1) end
local cursor = math.max(tonumber(redis.call('HGET', k.rate, 'cursor')) or 0, first)
-- Past the pre-queue's end and before the line's head: passed already.
if premax and cursor > premax and cursor < head then cursor = head end
local to = math.min(cursor + n - 1, last)
-- Seqs after this one joined this period or the last: seen, as far as idleness goes.
local fresh = fresh_from(k, period, stamps, last)

-- The slice's bits of the two bitmaps: bytes cursor >> 3 .. to >> 3.
local lo = math.floor(cursor / 8)
local function bits_of(key)
  if not key then return '' end
  return redis.call('GETRANGE', key, lo, math.floor(to / 8))
end
local now_bits = bits_of(seen_of(k, period, stamps))
local last_bits = bits_of(seen_of(k, period - 1, stamps))

-- A byte at a time: the eight seqs of a byte seen in either period are skipped at once; the
-- others are looked up together (one HMGET: most are places already passed or left).
local unseen = {}
local seq, upto = cursor, math.min(to, fresh)
while seq <= upto do
  local at = math.floor(seq / 8) - lo + 1
  local byte = bit.bor(string.byte(now_bits, at) or 0, string.byte(last_bits, at) or 0)
  local last_of_byte = math.min(upto, math.floor(seq / 8) * 8 + 7)
  if byte ~= 255 then
    for s = seq, last_of_byte do
      if bit.band(byte, 2 ^ (7 - s % 8)) == 0 then unseen[#unseen + 1] = s end
    end
  end
  seq = last_of_byte + 1
end
local looked = to - cursor + 1
if looked < 0 then looked = 0 end
local dropped = 0
for i = 1, #unseen, 1000 do
  local slice = {unpack(unseen, i, math.min(i + 999, #unseen))}
  local customers = redis.call('HMGET', k.seqs, unpack(slice))
  for j, s in ipairs(slice) do
    if customers[j] and leave_queue(k, customers[j], s) then dropped = dropped + 1 end
  end
end
cursor = to + 1
if looked < n then cursor = first end
redis.call('HSET', k.rate, 'cursor', cursor)
return {0, dropped, looked, math.max(0, last - first + 1)}
