--[[ include: configured(key, defaults) -> the concert's settings: each name's value from the
  concert's settings hash `key` (set by an operator: PATCH /admin/concerts/{id}/settings,
  python -m engine settings) or else its default, which the engine sends from the
  environment. Values are numbers (times in ms, flags 0/1). One HGETALL: the one way a script
  reads a setting (the hash holds only what an operator set, a few fields: cheaper whole
  than an HMGET naming every default). ]]
local function configured(key, defaults)
  local set = redis.call('HGETALL', key)
  for i = 1, #set, 2 do
    local name = set[i]
    if defaults[name] ~= nil then defaults[name] = tonumber(set[i + 1]) end
  end
  return defaults
end
