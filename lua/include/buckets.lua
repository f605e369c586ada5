--[[ include: draw(b, rate, burst, now) -> wait, bucket: a token bucket "level:lastMs",
  refilled at `rate` a second up to `burst`. wait 0 when a request may pass, else the ms
  until one may; bucket: what to store once the request goes ahead (b itself when refused;
  '' with rate 0, no limit: nothing to store). The reserve's bucket lives in the customer's
  ticket record (include/tickets.lua), issue's in the buckets hash (issue.lua). ]]
local function draw(b, rate, burst, now)
  if rate <= 0 then return 0, '' end
  local level = burst
  if b and b ~= '' then
    local l, t = string.match(b, '^([%d.]+):(%d+)$')
    level = math.min(burst, tonumber(l) + (now - tonumber(t)) * rate / 1000)
  end
  if level < 1 then return math.ceil((1 - level) * 1000 / rate), b end
  return 0, string.format('%.3f:%d', level - 1, now)
end
