--[[ include: take(field, rate, burst) -> 0 when a request may pass, else the ms until one
  may. A token bucket per field of the buckets hash, "level:lastMs", refilled at `rate` a
  second up to `burst`; rate 0: no limit, nothing stored. Nothing is written until spend():
  a script calls it once the request is going ahead, so a request refused for another reason
  (a full queue, the ticket limit) changes nothing. The tick drops buckets idle long enough
  to be full again (admit.lua).
  needs locals: buckets, now ]]
local taken_levels = {}
local function take(field, rate, burst)
  if rate <= 0 then return 0 end
  local b = redis.call('HGET', buckets, field)
  local level = burst
  if b then
    local l, t = string.match(b, '^([%d.]+):(%d+)$')
    level = math.min(burst, tonumber(l) + (now - tonumber(t)) * rate / 1000)
  end
  if level < 1 then return math.ceil((1 - level) * 1000 / rate) end
  taken_levels[#taken_levels + 1] = {field, level - 1}
  return 0
end

local function spend()
  for _, t in ipairs(taken_levels) do
    redis.call('HSET', buckets, t[1], string.format('%.3f:%d', t[2], now))
  end
  taken_levels = {}
end
