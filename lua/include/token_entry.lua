--[[ include: entry_of(active, entry, customer) -> kind, secret, ms: a token's entry in the
  tokens hash is "<secret>@<activeUntilMs>" when ACTIVE (kind 'A', ms: its expiry, so that
  checking a token takes one read) and "<secret>:<lastPollMs>" when WAITING (kind 'W'); the
  secret is 32 hex. No entry: nil. A bare secret (written before the expiry joined it) is
  ACTIVE until its score in `active`, the concert's zset of ACTIVE tokens. ]]
local function entry_of(active, entry, customer)
  if not entry then return nil end
  local mark = string.sub(entry, 33, 33)
  if mark == '@' then return 'A', string.sub(entry, 1, 32), tonumber(string.sub(entry, 34)) end
  if mark == ':' then return 'W', string.sub(entry, 1, 32), tonumber(string.sub(entry, 34)) end
  return 'A', entry, tonumber(redis.call('ZSCORE', active, customer)) or 0
end
