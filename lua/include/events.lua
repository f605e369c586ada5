--[[ include: event_stream(key, maxlen, now) -> the concert's stream of events, appended
  inside the script that makes the change (so none is lost or invented), trimmed to about
  `maxlen` entries. Each type has only its own fields, and `at` (ms):
    stream.reservation(kind, res_id, seat, customer): a reservation's HELD CANCELLED EXPIRED
      PAID REFUNDED REVOKED CHECKED_IN, with reservationId (the API's "<concertId>.<res_id>";
      res_id: the reservation's 32 hex), seatId and customerId;
    stream.admitted(n): ADMITTED, count (how many tokens a batch made ACTIVE);
    stream.token_revoked(customer): TOKEN_REVOKED, customerId (an operator ended the token;
      its released holds have their own REVOKED events);
    stream.stock(kind, sold): SOLD_OUT (every seat sold: no free seat, no hold that could
      come back) or BACK_ON_SALE (a seat came back after that), with sold (seats sold). ]]
local function event_stream(key, maxlen, now)
  return {
    reservation = function(kind, res_id, seat, customer)
      -- The API's id: the concert's (from its key, read only here: most calls write no
      -- reservation event) and the reservation's.
      local rid = string.match(key, '{c:(%d+)}') .. '.' .. res_id
      redis.call('XADD', key, 'MAXLEN', '~', maxlen, '*', 'type', kind, 'reservationId', rid,
                 'seatId', seat, 'customerId', customer, 'at', now)
    end,
    admitted = function(n)
      redis.call('XADD', key, 'MAXLEN', '~', maxlen, '*', 'type', 'ADMITTED', 'count', n,
                 'at', now)
    end,
    token_revoked = function(customer)
      redis.call('XADD', key, 'MAXLEN', '~', maxlen, '*', 'type', 'TOKEN_REVOKED',
                 'customerId', customer, 'at', now)
    end,
    stock = function(kind, sold)
      redis.call('XADD', key, 'MAXLEN', '~', maxlen, '*', 'type', kind, 'sold', sold, 'at', now)
    end,
  }
end
