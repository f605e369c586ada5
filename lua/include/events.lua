--[[ include: emit(kind, id, seat, customer, count) appends one event to the concert's stream,
  inside the script that makes the change (so none is lost or invented), trimmed to about
  events_max entries: type (HELD CANCELLED EXPIRED PAID REFUNDED REVOKED ADMITTED),
  reservationId, seatId, customerId, at (ms), and count (ADMITTED: how many were admitted).
  needs locals: events, events_max, now ]]
local function emit(kind, id, seat, customer, count)
  if count then
    redis.call('XADD', events, 'MAXLEN', '~', events_max, '*', 'type', kind, 'reservationId',
               id, 'seatId', seat, 'customerId', customer, 'at', now, 'count', count)
  else
    redis.call('XADD', events, 'MAXLEN', '~', events_max, '*', 'type', kind, 'reservationId',
               id, 'seatId', seat, 'customerId', customer, 'at', now)
  end
end
