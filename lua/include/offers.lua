--[[ include: a returned seat on offer to the queue (include/release puts it there): for
  offer_ms after it came back, only a customer whose token became ACTIVE at or after that
  moment may hold it, so that the next in line gets it and not a customer who was ACTIVE
  already and refreshes the seat list. k.offers: seat index -> when it came back (ms).
  offered(k, index, now, offer_ms) -> when the seat at `index` came back, or nil when it is
  not on offer (never, or its time on offer is over).
  may_take(activated, returned) -> whether a token ACTIVE since `activated` may hold a seat
  on offer since `returned`.
  offers_in(k, now, offer_ms, first, last) -> the indexes in [first, last] on offer, with
  when each came back: {index, returned, index, returned, ...} (of the concert's latest 2,000
  offers at most; the tick drops the ones whose time is over). ]]
local function offered(k, index, now, offer_ms)
  if offer_ms <= 0 then return nil end
  local at = tonumber(redis.call('ZSCORE', k.offers, index))
  if at and at > now - offer_ms then return at end
  return nil
end

local function may_take(activated, returned)
  return activated >= returned
end

local function offers_in(k, now, offer_ms, first, last)
  if offer_ms <= 0 then return {} end
  local out = {}
  local live = redis.call('ZREVRANGEBYSCORE', k.offers, '+inf', '(' .. (now - offer_ms),
                          'WITHSCORES', 'LIMIT', 0, 2000)
  for i = 1, #live, 2 do
    local index = tonumber(live[i])
    if index >= first and index <= last then
      out[#out + 1] = index
      out[#out + 1] = tonumber(live[i + 1])
    end
  end
  return out
end
