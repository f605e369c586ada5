--[[ include: debit_step(u, keep, now, rid, attempt, amount, mode) -> pay step 2 for one
  attempt of reservation rid ("<concertId>.<32 hex>"): DEBIT or VOID; its records and replies
  are lua/debit.lua's. u: the customer's keys by name (balance, debits, history); keep: the
  history's length kept (include/history). ]]
-- @include history
local function debit_step(u, keep, now, rid, attempt, amount, mode)
  local record = redis.call('HGET', u.debits, rid) or 'V:0'
  local kind, of, paid, after = string.match(record, '^(%u):(%d+):?(%d*):?(%d*)$')
  if kind == 'D' and paid == '' then
    -- Written before records named their attempt ("D:<amount>"): it meant "debited" to any
    -- attempt, and the pay that wrote it is the one in flight now. Read it that way, once.
    paid, of = of, attempt
    after = redis.call('GET', u.balance) or '0'
    redis.call('HSET', u.debits, rid, string.format('D:%d:%s:%s', attempt, paid, after))
  elseif kind == 'R' and paid == '' then
    return {16}  -- "R:<amount>" of before: refunded, for every attempt
  end
  of = tonumber(of)
  if of > attempt then return {16} end
  if of == attempt then
    if kind == 'D' then return {0, tonumber(after), 1, tonumber(paid)} end
    return {16}
  end
  -- The record speaks for an earlier attempt, which can no longer be PAID.
  local refunded = false
  if kind == 'D' then
    local back = redis.call('INCRBY', u.balance, paid)
    remember(u.history, keep, now, 'REFUND', tonumber(paid), back, rid)
    refunded = true
  end
  if mode == 'VOID' then
    redis.call('HSET', u.debits, rid, 'V:' .. attempt)
    return {16}
  end
  local balance = tonumber(redis.call('GET', u.balance) or '0')
  if balance < amount then
    if refunded then redis.call('HSET', u.debits, rid, 'V:' .. attempt) end
    return {11, balance}
  end
  balance = redis.call('DECRBY', u.balance, amount)
  redis.call('HSET', u.debits, rid, string.format('D:%d:%d:%d', attempt, amount, balance))
  remember(u.history, keep, now, 'PAYMENT', amount, balance, rid)
  return {0, balance, 0, amount}
end
