#!lua flags=allow-oom
--[[
  Forget the pay records of a customer's reservations that were closed long ago (the tick
  calls it with what admit.lua purged): after IDEMPOTENCY_TTL_SECONDS no pay step of theirs
  can still be on its way, so their records only cost memory.

  Flag allow-oom: it only frees memory.

  KEYS[1] debits  hash  reservation id -> record (see debit.lua)

  ARGV[1..] reservation ids, with their concert ("<concertId>.<32 hex>")

  Returns
    {0, forgotten}
]]
return {0, redis.call('HDEL', KEYS[1], unpack(ARGV))}
