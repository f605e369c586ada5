-- wrk driver for the endpoint benchmark: one request shape per BENCH_MODE, ids from a counter
-- so that writes (issue, charge, reserve, pay) always touch fresh customers, seats, holds.
-- done() prints one JSON line that the runner parses.
local mode = os.getenv("BENCH_MODE")
local token = os.getenv("BENCH_TOKEN") or ""
local concert = os.getenv("BENCH_CONCERT") or "2"
local option = os.getenv("BENCH_OPTION") or "41150"
local query = os.getenv("BENCH_QUERY") or ""  -- e.g. "?section=A" for the seat list
local seats_per_option = tonumber(os.getenv("BENCH_SEATS_PER_OPTION") or "1000")
local first_option = tonumber(os.getenv("BENCH_FIRST_OPTION") or "1")
-- pay: one "token reservationId" line per hold; reserve: one token per line, each customer
-- reserving BENCH_PER_CUSTOMER seats (its ticket limit) in turn
local ids_file = os.getenv("BENCH_IDS")
local tokens_file = os.getenv("BENCH_TOKENS")
local per_customer = tonumber(os.getenv("BENCH_PER_CUSTOMER") or "1")
local n = tonumber(os.getenv("BENCH_START") or "0")
local ids, id_tokens, tokens = {}, {}, {}
-- mix: one "concertId optionId token" line per concert; requests rotate over the concerts
local mix_file = os.getenv("BENCH_MIX")
local mix = {}

if ids_file then
  for line in io.lines(ids_file) do
    local t, id = string.match(line, "^(%S+) (%S+)$")
    id_tokens[#id_tokens + 1], ids[#ids + 1] = t, id
  end
end
if tokens_file then
  for line in io.lines(tokens_file) do tokens[#tokens + 1] = line end
end
local function as(t)
  return {["Content-Type"] = "application/json", ["Authorization"] = t or "exhausted"}
end
if mix_file then
  for line in io.lines(mix_file) do
    local c, o, t = string.match(line, "^(%d+) (%d+) (%S+)$")
    mix[#mix + 1] = {c, o, t}
  end
end

local json = {["Content-Type"] = "application/json"}
local authed = {["Content-Type"] = "application/json", ["Authorization"] = token}

request = function()
  n = n + 1
  if mode == "issue" then
    return wrk.format("POST", "/api/token/issue", json,
      '{"customerId":' .. n .. ',"concertId":' .. concert .. '}')
  elseif mode == "status" or mode == "poll" then
    return wrk.format("GET", "/api/token/status", authed)
  elseif mode == "dates" then
    return wrk.format("GET", "/api/" .. concert .. "/available-dates", authed)
  elseif mode == "seats" then
    return wrk.format("GET", "/api/" .. option .. "/available-seats" .. query, authed)
  elseif mode == "point" then
    return wrk.format("GET", "/api/point?customerId=" .. (n % 10000 + 1), json)
  elseif mode == "charge" then
    return wrk.format("PATCH", "/api/point/charge", json,
      '{"customerId":' .. (n % 10000 + 1) .. ',"amount":5000.00}')
  elseif mode == "reserve" then
    local i = n - 1
    local opt = first_option + math.floor(i / seats_per_option)
    local seat = opt * seats_per_option + (i % seats_per_option) + 1
    return wrk.format("POST", "/api/reserve", as(tokens[math.floor(i / per_customer) + 1]),
      '{"concertOptionId":' .. opt .. ',"seatId":' .. seat .. '}')
  elseif mode == "mix" then
    -- every concert in turn; per concert: status, seats, dates, then a customer's point read
    -- and a charge, so that both concert and customer slots see load
    local m = mix[(math.floor(n / 5) % #mix) + 1]
    local step = n % 5
    local h = {["Content-Type"] = "application/json", ["Authorization"] = m[3]}
    if step == 0 then return wrk.format("GET", "/api/token/status", h)
    elseif step == 1 then return wrk.format("GET", "/api/" .. m[2] .. "/available-seats", h)
    elseif step == 2 then return wrk.format("GET", "/api/" .. m[1] .. "/available-dates", h)
    elseif step == 3 then return wrk.format("GET", "/api/point?customerId=" .. (n % 10000 + 1), json)
    else return wrk.format("PATCH", "/api/point/charge", json,
      '{"customerId":' .. (n % 10000 + 1) .. ',"amount":1}') end
  elseif mode == "pay" then
    return wrk.format("POST", "/api/pay", as(id_tokens[n]),
      '{"reservationId":"' .. (ids[n] or "exhausted") .. '"}')
  else
    return wrk.format("GET", "/")
  end
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"non2xx":%d,"connect":%d,"read":%d,"write":%d,' ..
    '"timeout":%d,"p50_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
