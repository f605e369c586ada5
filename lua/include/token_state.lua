--[[ include: token_state(k, customer, secret, idle_ms, now) -> state, until: state 0 ACTIVE,
  1 unknown, expired, idle or finished, 2 WAITING: the customer's entry in k.tokens against the
  token secret presented (k.active: see token_entry); until: an ACTIVE token's expiry (ms). ]]
-- @include token_entry
local function token_state(k, customer, secret, idle_ms, now)
  local kind, s, ms = entry_of(k.active, redis.call('HGET', k.tokens, customer), customer)
  if s ~= secret then return 1 end
  if kind == 'A' then
    if ms > now then return 0, ms end
    return 1
  end
  if ms > now - idle_ms then return 2 end
  return 1
end
