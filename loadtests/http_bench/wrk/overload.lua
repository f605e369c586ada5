-- wrk driver for the overload benchmark: each connection is a user that sends a request,
-- waits for the answer, thinks BENCH_THINK_MS and sends the next; after a 503 it waits the
-- answer's Retry-After instead (when BENCH_HONOR_RETRY=1), as the booking page does.
-- wrk asks delay() for the next request on a connection after response() saw the answer, but
-- other connections' answers may come in between: so each 503 owes one wait of Retry-After to
-- the next connection that asks, which keeps the number of users waiting out a 503 right.
-- done() prints one JSON line that the runner parses.
local mode = os.getenv("BENCH_MODE") or "point"
local token = os.getenv("BENCH_TOKEN") or ""
local think = tonumber(os.getenv("BENCH_THINK_MS") or "0")
local honor = os.getenv("BENCH_HONOR_RETRY") == "1"
local n = 0
local owed = {}  -- Retry-After waits (ms) not yet served
counts = {}  -- a global: done() reads each thread's with thread:get
local threads = {}

setup = function(thread)
  table.insert(threads, thread)
end

request = function()
  n = n + 1
  if mode == "status" then
    return wrk.format("GET", "/api/token/status", {["Authorization"] = token})
  end
  return wrk.format("GET", "/api/point?customerId=" .. (n % 10000 + 1))
end

response = function(status, headers, body)
  counts[status] = (counts[status] or 0) + 1
  if honor and status == 503 then
    local after = tonumber(headers["retry-after"] or headers["Retry-After"] or "1") or 1
    owed[#owed + 1] = after * 1000
  end
end

-- Defined only when needed: with a delay() wrk keeps a timer per waiting connection and
-- scans them all on every turn of its loop.
if think > 0 or honor then
  delay = function()
    if #owed > 0 then
      return table.remove(owed)
    end
    return think
  end
end

done = function(summary, latency, requests)
  local e = summary.errors
  local total, parts = {}, {}
  for _, t in ipairs(threads) do
    for status, k in pairs(t:get("counts")) do total[status] = (total[status] or 0) + k end
  end
  for status, k in pairs(total) do parts[#parts + 1] = string.format('"%d":%d', status, k) end
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"non2xx":%d,"connect":%d,"read":%d,"write":%d,' ..
    '"timeout":%d,"p50_us":%d,"p99_us":%d,"max_us":%d,"statuses":{%s}}\n',
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max, table.concat(parts, ",")))
end
