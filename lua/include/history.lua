--[[ include: remember(history, keep, now, kind, amount, balance, ref) appends a money
  movement to the customer's history list, newest first: "kind|amount|balance|atMs|ref". %d,
  not tostring: Lua prints numbers of 15+ digits as 1e+14. Trimmed to `keep` in steps of 10
  rather than on every push: one call less on the hot path. ]]
local function remember(history, keep, now, kind, amount, balance, ref)
  if redis.call('LPUSH', history, string.format('%s|%d|%d|%d|%s', kind, amount, balance, now,
                                                ref or '')) > keep + 10 then
    redis.call('LTRIM', history, 0, keep - 1)
  end
end
