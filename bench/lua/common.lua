-- ================================================================
-- FILE: common.lua
-- PATH: /bench/lua/common.lua
-- DESCRIPTION: Shared part of the wrk scripts: thread ids, non-2xx count, one JSON summary line
-- VERSION: v1.1.0
-- UPDATED: 2026-12-02 05:45:00
-- ================================================================
-- wrk runs setup() and done() in its main Lua state and init()/request()/response() in one
-- state per thread, so each thread counts its own non-2xx answers and done() adds them up.

local threads = {}

function setup(thread)
  thread:set("thread_id", #threads + 1)
  table.insert(threads, thread)
end

non2xx = 0

function response(status, headers, body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
  end
end

-- Scripts call this from init(args): args are the words after `--` on wrk's command line.
function common_init(args)
  math.randomseed(os.time() * 1000 + thread_id * 7919)
  for _ = 1, 10 do math.random() end
end

-- wrk.format(method, path, headers, body) sends `headers` *instead of* wrk.headers (the -H
-- options: the bearer token), so a script that adds a header passes with_headers({...}).
function with_headers(extra)
  local merged = {}
  for name, value in pairs(wrk.headers) do merged[name] = value end
  for name, value in pairs(extra) do merged[name] = value end
  return merged
end

function done(summary, latency, requests)
  local bad = 0
  for _, thread in ipairs(threads) do
    bad = bad + thread:get("non2xx")
  end
  local errors = summary.errors
  io.write(string.format(
    'WRK_RESULT {"requests": %d, "duration_us": %d, "non2xx": %d, "connect_errors": %d, ' ..
    '"read_errors": %d, "write_errors": %d, "timeouts": %d, "p50_us": %d, "p90_us": %d, ' ..
    '"p99_us": %d, "max_us": %d, "mean_us": %.1f}\n',
    summary.requests, summary.duration, bad, errors.connect, errors.read, errors.write,
    errors.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean))
end
