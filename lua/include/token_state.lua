--[[ include: token_state(k, customer, seq, now) -> state, until: state 0 ACTIVE, 1 unknown,
  expired or finished, 2 WAITING: the customer's entry in k.tokens against the token's seq
  (the engine has checked the token's mac); until: an ACTIVE token's expiry (ms). ]]
-- @include token_entry
local function token_state(k, customer, seq, now)
  local kind, s, ms = entry_of(redis.call('HGET', k.tokens, customer))
  if s ~= seq then return 1 end
  if kind == 'A' then
    if ms > now then return 0, ms end
    return 1
  end
  return 2
end
