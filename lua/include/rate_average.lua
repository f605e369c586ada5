--[[ include: decayed(avg, n, sec, second) -> a minute's moving average of a count a second
  (the rate hash's avg and n, or pavg and pn: the average as of second `sec`, and the count in
  it) brought to `second` (Redis's clock, whole seconds); the same when `sec` is `second`. ]]
local DECAY = math.exp(-1 / 60)
local function decayed(avg, n, sec, second)
  if sec >= second then return avg end
  return avg * DECAY ^ (second - sec) + n * (1 - DECAY) * DECAY ^ (second - sec - 1)
end
