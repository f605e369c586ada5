--[[ include: token_state() -> 0 ACTIVE, 1 unknown/expired/idle/finished, 2 WAITING.
  A token's entry is its secret (32 hex) when ACTIVE, "secret:lastPollMs" when WAITING.
  needs locals: tokens, active, customer, secret, idle_ms, now ]]
local function token_state()
  local entry = redis.call('HGET', tokens, customer)
  if not entry or string.sub(entry, 1, 32) ~= secret then return 1 end
  if #entry == 32 then
    local active_until = tonumber(redis.call('ZSCORE', active, customer))
    if active_until and active_until > now then return 0 end
    return 1
  end
  if tonumber(string.sub(entry, 34)) > now - idle_ms then return 2 end
  return 1
end
