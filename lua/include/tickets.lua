--[[ include: a customer's record in the concert, one field of the tickets hash (one read and
  one write a reserve):
    "<paid>|<open ids>|<token>|<held>|<bucket>" or "...|<bucket>|<cancelled>"
  paid: seats paid; open ids: the reservations held or paying (32 hex, comma-separated);
  token, held: the seq of the token of the latest hold and how many open holds that token
  made (the pay that leaves it none finishes the token; a stale secret means none); bucket:
  the reserve rate limit's "level:lastMs" (include/buckets.lua), empty when none; cancelled:
  how many holds that token cancelled (absent: none), kept with the token while it counts,
  so that a token's reserve-and-cancel loop ends at its cancel limit (each closed hold's
  record is kept a while: lua/admit.lua). A record of the former "<paid>|<open ids>" (a
  deploy over a live drop) is read with the token of its latest hold and that token's holds
  counted from their records, and no bucket.
  k: the concert's keys by name (k.tickets, and k.res for a record of the former form).
  ticket_get(k, c) -> {paid, ids, token, held, bucket, cancelled}; ticket_set(k, c, t) writes
  it (deletes it when empty); ticket_close(k, c, res_id, sold, token, cancelled) -> the holds
  `token` still has open, once hold res_id is gone (sold: it counts as a paid seat;
  cancelled: its customer cancelled it); ticket_unpaid(k, c): a paid seat refunded;
  cancels_over(t, token, max_tickets, quantity) -> the token's cancel limit (twice the ticket
  limit, at least 8) when `quantity` more holds would pass it, else nil: its cancelled holds
  and those it could still cancel (its open ones, and these); with no ticket limit, its
  cancelled ones only. Open holds plus paid seats never exceed maxTicketsPerCustomer. ]]
local function ticket_get(k, customer)
  local raw = redis.call('HGET', k.tickets, customer)
  local t = {paid = 0, ids = {}, token = '', held = 0, bucket = '', cancelled = 0}
  if raw then
    local paid, list, token, held, bucket, cancelled =
      string.match(raw, '^(%d+)|([^|]*)|?(%x*)|?(%d*)|?([^|]*)|?(%d*)$')
    t.paid, t.token, t.held, t.bucket = tonumber(paid), token, tonumber(held) or 0, bucket
    t.cancelled = tonumber(cancelled) or 0
    for res_id in string.gmatch(list, '%x+') do t.ids[#t.ids + 1] = res_id end
    if held == '' then  -- the former form: the count from the open holds' own records
      for _, res_id in ipairs(t.ids) do
        local rec = redis.call('HGET', k.res, res_id)
        rec = rec and cjson.decode(rec)
        if rec and rec.token ~= t.token then t.token, t.held = rec.token, 0 end
        if rec then t.held = t.held + 1 end  -- ids are in hold order: the last token counts
      end
    end
  end
  return t
end

local function ticket_set(k, customer, t)
  if #t.ids == 0 then
    t.held = 0
    if t.cancelled == 0 then t.token = '' end
  end
  if t.paid == 0 and #t.ids == 0 and t.bucket == '' and t.cancelled == 0 then
    redis.call('HDEL', k.tickets, customer)
  else
    redis.call('HSET', k.tickets, customer, t.paid .. '|' .. table.concat(t.ids, ',') .. '|' ..
               t.token .. '|' .. t.held .. '|' .. t.bucket ..
               (t.cancelled > 0 and '|' .. t.cancelled or ''))
  end
end

local function cancels_over(t, token, max_tickets, quantity)
  local limit = math.max(8, 2 * max_tickets)
  if t.token ~= token then return nil end  -- a new token's first hold starts afresh
  local could = max_tickets > 0 and t.held + quantity or 1
  if t.cancelled + could > limit then return limit end
  return nil
end

local function ticket_close(k, customer, res_id, sold, token, cancelled)
  local t = ticket_get(k, customer)
  local found = false
  for i = #t.ids, 1, -1 do
    if t.ids[i] == res_id then
      table.remove(t.ids, i)
      found = true
    end
  end
  if sold then t.paid = t.paid + 1 end
  local left = 0
  if found and t.token == token and t.held > 0 then
    t.held = t.held - 1
    left = t.held
  end
  if found and t.token == token and cancelled then t.cancelled = t.cancelled + 1 end
  ticket_set(k, customer, t)
  return left
end

local function ticket_unpaid(k, customer)
  local t = ticket_get(k, customer)
  t.paid = math.max(0, t.paid - 1)
  ticket_set(k, customer, t)
end
