--[[ include: now, Redis's clock in whole milliseconds (a script decides expiry by it).
  needs locals: (none) ]]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
