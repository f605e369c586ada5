--[[ include: events of the concert's stream, appended inside the script that makes the change
  (so none is lost or invented), trimmed to about events_max entries. Each type has only its
  own fields, and `at` (ms):
    emit(kind, id, seat, customer): a reservation's HELD CANCELLED EXPIRED PAID REFUNDED
      REVOKED CHECKED_IN, with reservationId (the API's "<concertId>.<32 hex>", from id: the 32 hex),
      seatId and customerId;
    emit_admitted(n): ADMITTED, count (how many tokens a batch made ACTIVE);
    emit_token_revoked(customer): TOKEN_REVOKED, customerId (an operator ended the token;
      its released holds have their own REVOKED events).
  needs locals: events, events_max, now ]]
local rid_prefix = string.match(events, '{c:(%d+)}') .. '.'  -- the concert's id, from its key

local function emit(kind, id, seat, customer)
  redis.call('XADD', events, 'MAXLEN', '~', events_max, '*', 'type', kind, 'reservationId',
             rid_prefix .. id, 'seatId', seat, 'customerId', customer, 'at', now)
end

local function emit_admitted(n)
  redis.call('XADD', events, 'MAXLEN', '~', events_max, '*', 'type', 'ADMITTED', 'count', n,
             'at', now)
end

local function emit_token_revoked(customer)
  redis.call('XADD', events, 'MAXLEN', '~', events_max, '*', 'type', 'TOKEN_REVOKED',
             'customerId', customer, 'at', now)
end
