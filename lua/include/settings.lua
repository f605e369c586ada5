--[[ include: configured(key, defaults) -> the concert's settings: each name's value from the
  concert's settings hash `key` (set by an operator: PATCH /admin/concerts/{id}/settings,
  python -m engine settings) or else its default, which the engine sends from the
  environment. Values are numbers (times in ms, flags 0/1). One HMGET: the one way a script
  reads a setting. ]]
local function configured(key, defaults)
  local names, n = {}, 0
  for name in pairs(defaults) do
    n = n + 1
    names[n] = name
  end
  local values = redis.call('HMGET', key, unpack(names))
  for i = 1, n do
    local v = values[i]
    if v then defaults[names[i]] = tonumber(v) end
  end
  return defaults
end
