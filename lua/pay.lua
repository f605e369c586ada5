#!lua
--[[
  Pay in one call, where the concert's keys and the customer's live on one Redis (not a
  cluster: there they are in different slots, and pay runs as its three steps, one call each).
  The same three steps, run back to back inside one script: lua/pay_begin.lua,
  lua/debit.lua and lua/pay_finish.lua share their code with it (include/*_step.lua), so the
  records it leaves are theirs and the stepped protocol (engine/pay.py) can take over any
  reservation. Atomic: no other call sees a reservation PAYING because of it, and a reply lost
  on the way leaves nothing to recover, only a PAID to learn by paying again.

  Not allow-oom: when Redis is full it is refused whole, and nothing has changed.

  KEYS[1]  tokens   hash  customerId -> "secret@activeUntilMs" or "secret:lastPollMs"
  KEYS[2]  active   zset  customerId -> ACTIVE token expiry (ms)
  KEYS[3]  res      hash  reservation id -> JSON record
  KEYS[4]  holds    zset  reservation id -> hold expiry (ms)
  KEYS[5]  paying   zset  reservation id -> pay start (ms)
  KEYS[6]  taken    bits  seat index -> 1 while the seat is held or sold
  KEYS[7]  free     hash  optionId -> free seats
  KEYS[8]  gone     zset  closed reservation id -> closed at (ms)
  KEYS[9]  settings hash  the concert's settings (include/settings.lua)
  KEYS[10] tickets  hash  customerId -> ticket record (include/tickets.lua)
  KEYS[11] events   stream the concert's events
  KEYS[12] concert  hash  field sold counts sales
  KEYS[13] balance  string  the customer's points, integer minor units
  KEYS[14] debits   hash    reservation id -> debit record (lua/debit.lua)
  KEYS[15] history  list    the customer's money movements, newest first

  ARGV[1] customerId (from the token)
  ARGV[2] token secret
  ARGV[3] default waiting idle limit (ms)
  ARGV[4] reservation id (32 hex chars)
  ARGV[5] a pay in PAYING this long is stale: its payer crashed (ms)
  ARGV[6] events kept in the stream (about)
  ARGV[7] reservation id, with its concert ("<concertId>.<32 hex>")
  ARGV[8] history length kept

  Returns
    {0, priceMinor, balanceAfter}  PAID now: debited, seat sold, token finished if it was
                                   the last open hold under it
    {11, balance}                  balance too low: nothing debited, the reservation HELD
                                   again (or released, its time being up)
    every other reply of lua/pay_begin.lua ({18, amount, balanceAfter} PAID before; {14,
    attempt} a stale attempt to recover first; {1} {2} {7} {9} {10} {15} {24}) and {16} of
    lua/debit.lua (a record of a later attempt: refused like 11, nothing debited); {7} and
    {17} of lua/pay_finish.lua cannot come here (the attempt is PAYING under this call)
]]
local tokens, active, res, holds = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local paying, taken, free, gone = KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local settings, tickets, events, concert = KEYS[9], KEYS[10], KEYS[11], KEYS[12]
local balance_key, debits, history = KEYS[13], KEYS[14], KEYS[15]
local customer, secret = ARGV[1], ARGV[2]
local id, stale_ms, events_max = ARGV[4], tonumber(ARGV[5]), tonumber(ARGV[6])
local rid, keep = ARGV[7], tonumber(ARGV[8])

-- @include clock

local idle_ms = tonumber(redis.call('HGET', settings, 'idleMs')) or tonumber(ARGV[3])

-- @include token_entry

-- @include token_state

-- @include tickets

-- @include events

-- @include release

-- @include history

-- @include pay_begin_step

-- @include debit_step

-- @include pay_finish_step

local begun = pay_begin_step(id)
if begun[1] ~= 0 then return begun end
local price, attempt = begun[2], begun[3]
local debited = debit_step(rid, attempt, price, 'DEBIT')
if debited[1] ~= 0 then
  pay_finish_step(id, attempt, 'REFUSED', 0)
  return debited
end
-- The attempt is PAYING under this call since step 1: step 3 cannot answer 17 or 7 here.
pay_finish_step(id, attempt, 'PAID', debited[2])
return {0, price, debited[2]}
