--[[ include: remember(kind, amount, balance, ref) appends a money movement to the customer's
  history, newest first. %d, not tostring: Lua prints numbers of 15+ digits as 1e+14. Trimmed
  in steps of 10 rather than on every push: one call less on the hot path.
  needs locals: history, keep, now ]]
local function remember(kind, amount, balance, ref)
  if redis.call('LPUSH', history, string.format('%s|%d|%d|%d|%s', kind, amount, balance, now,
                                                ref or '')) > keep + 10 then
    redis.call('LTRIM', history, 0, keep - 1)
  end
end
