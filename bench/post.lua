-- wrk script of the benchmark's ingress row (examples/bench/): POSTs the body in
-- $BENCH_BODY, counts answers other than 202 and prints one machine-readable line.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local file = assert(io.open(os.getenv("BENCH_BODY"), "rb"))
wrk.body = file:read("*a")
file:close()

local threads = {}
count, refused = 0, 0

function setup(thread)
  table.insert(threads, thread)
end

function response(status, headers, body)
  count = count + 1
  if status ~= 202 then refused = refused + 1 end
end

function done(summary, latency, requests)
  local answered, refused_all = 0, 0
  for _, thread in ipairs(threads) do
    answered = answered + thread:get("count")
    refused_all = refused_all + thread:get("refused")
  end
  io.write(string.format("BENCH answered=%d refused=%d errors=%d seconds=%.3f p50_us=%d p99_us=%d\n",
    answered, refused_all, summary.errors.connect + summary.errors.read + summary.errors.write
      + summary.errors.timeout, summary.duration / 1e6, latency:percentile(50), latency:percentile(99)))
end
