--[[ include: the pre-queue's order, a keyed pseudo-random permutation of its places (so the
  opening of a pre-queue of any size costs nothing, and a waiter's place after it is known
  from its seq alone: engine/queue_view.py computes the same in Python).
  slot_of(key, m, i) -> the slot (0 .. m-1) of the i-th place (0 .. m-1) of a pre-queue of m;
  place_at(key, m, s) -> the place (0 .. m-1) at slot s: its inverse.
  A 4-round Feistel network over the smallest even number of bits 2h >= log2(m), the round
  function the first 32 bits of sha1(key .. round .. ':' .. half) mod 2^h, walked in cycles
  until it lands below m (at most a few rounds: 2^2h < 4m). ]]
local function feistel_bits(m)
  local h = 1
  while 2 ^ (2 * h) < m do h = h + 1 end
  return h
end

local function feistel_round(key, r, x, h)
  return tonumber(string.sub(redis.sha1hex(key .. r .. ':' .. x), 1, 8), 16) % 2 ^ h
end

local function slot_of(key, m, i)
  local h = feistel_bits(m)
  local half = 2 ^ h
  local x = i
  repeat
    local l, r = math.floor(x / half), x % half
    for round = 1, 4 do
      l, r = r, bit.bxor(l, feistel_round(key, round, r, h))
    end
    x = l * half + r
  until x < m
  return x
end

local function place_at(key, m, s)
  local h = feistel_bits(m)
  local half = 2 ^ h
  local x = s
  repeat
    local l, r = math.floor(x / half), x % half
    for round = 4, 1, -1 do
      l, r = bit.bxor(r, feistel_round(key, round, l, h)), l
    end
    x = l * half + r
  until x < m
  return x
end
