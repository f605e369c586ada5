--[[ include: time_ms() -> Redis's clock in whole milliseconds (a script decides expiry by
  it, never by a time its caller sends). ]]
local function time_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
