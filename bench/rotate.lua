-- wrk script: GET PREFIX{id} rotating through the ids in a file (one a line).
--   wrk ... -s rotate.lua https://host:port -- IDS_FILE PREFIX
-- Headers given with -H (run.sh: Authorization) are sent too.
-- Each wrk thread starts at a different offset so the threads do not walk in lockstep.
local ids = {}
local i = 0
local prefix = "/fhir/Patient/"
local headers = { ["Accept"] = "application/fhir+json" }

local threads = 0
function setup(thread)
  thread:set("thread_no", threads)
  threads = threads + 1
end

function init(args)
  local file = args[1] or error("usage: -- IDS_FILE [PREFIX]")
  prefix = args[2] or prefix
  for line in io.lines(file) do
    if #line > 0 then ids[#ids + 1] = line end
  end
  if #ids == 0 then error("no ids in " .. file) end
  -- wrk.format() sends only the table it is given: add the -H headers to ours.
  for k, v in pairs(wrk.headers) do
    if headers[k] == nil then headers[k] = v end
  end
  i = ((thread_no or 0) * 7919) % #ids
end

function request()
  i = i % #ids + 1
  return wrk.format("GET", prefix .. ids[i], headers)
end

function done(summary, latency, requests)
  -- One machine-readable line for run.sh (latencies are in microseconds).
  io.write(string.format("WRK_JSON {\"requests\":%d,\"seconds\":%.3f,\"rps\":%.1f,\"p50_us\":%d,\"p90_us\":%d,\"p99_us\":%d,\"errors\":%d,\"non2xx\":%d}\n",
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status))
end
