#!lua flags=allow-oom
--[[
  Forget the pay records of a customer's reservations that were closed long ago (the tick
  calls it with what admit.lua purged): after IDEMPOTENCY_TTL_SECONDS no pay step of theirs
  can still be on its way, so their records only cost memory. A refund's record (R:..) is
  kept: it is the only memory that the points went back, and an operator's refund of the sale
  may have begun after admit.lua listed it (without R:.. a second refund would take the
  record for one forgotten before the refund and pay the price back again). Refunds are
  operators' acts or the protocol's rare orphan refunds, so those records stay few.

  Flag allow-oom: it only frees memory.

  KEYS[1] debits  hash  reservation id -> record (see debit.lua)

  ARGV[1..] reservation ids, with their concert ("<concertId>.<32 hex>")

  Returns
    {0, forgotten}
]]
local debits, forgotten = KEYS[1], 0
for _, id in ipairs(ARGV) do
  local record = redis.call('HGET', debits, id)
  if record and string.sub(record, 1, 2) ~= 'R:' then
    forgotten = forgotten + redis.call('HDEL', debits, id)
  end
end
return {0, forgotten}
