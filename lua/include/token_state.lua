--[[ include: token_state() -> 0 ACTIVE, 1 unknown/expired/idle/finished, 2 WAITING: the
  customer's token entry (include/token_entry) against the secret presented.
  needs locals: tokens, customer, secret, idle_ms, now and the include token_entry ]]
local function token_state()
  local kind, s, ms = entry_of(redis.call('HGET', tokens, customer), customer)
  if s ~= secret then return 1 end
  if kind == 'A' then return ms > now and 0 or 1 end
  if ms > now - idle_ms then return 2 end
  return 1
end
