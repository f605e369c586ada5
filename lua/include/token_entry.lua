--[[ include: a customer's token in the concert's tokens hash.
  entry_of(entry) -> kind, seq, untilMs: "<seq>@<untilMs>" is an ACTIVE token (kind 'A', its
  expiry: a token check is one read), "<seq>" a WAITING one (kind 'W'); no entry, or one of
  another shape (a token of an older version): nil. seq is the token's place in the order the
  concert issued them (include/admission). ]]
local function entry_of(entry)
  if not entry then return nil end
  local at = string.find(entry, '@', 1, true)
  if at then
    local seq = tonumber(string.sub(entry, 1, at - 1))
    if not seq then return nil end
    return 'A', seq, tonumber(string.sub(entry, at + 1))
  end
  local seq = tonumber(entry)
  if not seq then return nil end
  return 'W', seq, nil
end
