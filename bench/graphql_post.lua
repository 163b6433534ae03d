-- wrk script for api_bench.py: POST one GraphQL document with its headers, and print the
-- figures on one machine-readable line at the end.
--   BENCH_BODY           the JSON request body ({"query": ...})
--   BENCH_AUTHORIZATION  the Authorization header value (optional)
wrk.method = "POST"
wrk.body = os.getenv("BENCH_BODY")
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json"
local authorization = os.getenv("BENCH_AUTHORIZATION")
if authorization and authorization ~= "" then
  wrk.headers["Authorization"] = authorization
end

function done(summary, latency, requests)
  local e = summary.errors
  -- latency in microseconds; duration in microseconds
  io.write(string.format("BENCH_RESULT requests=%d duration_us=%d p50_us=%d p90_us=%d p99_us=%d max_us=%d " ..
                         "connect=%d read=%d write=%d status=%d timeout=%d\n",
                         summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
                         latency:percentile(99), latency.max, e.connect, e.read, e.write, e.status, e.timeout))
end
