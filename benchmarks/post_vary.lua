-- wrk script: POST one body, with the marker @@MARK@@ replaced per request by
-- "<tag>-<thread>-<counter>", so that every request carries distinct bytes (no duplicates).
-- Usage: wrk -t1 -c32 -d10s -s post_vary.lua URL -- BODY_FILE CONTENT_TYPE TAG
local threads = {}
local prefix, suffix, tag
local counter = 0

function setup(thread)
   table.insert(threads, thread)
   thread:set("tid", #threads)
end

function init(args)
   local file = assert(io.open(args[1], "rb"))
   local body = file:read("*a")
   file:close()
   local first, last = string.find(body, "@@MARK@@", 1, true)
   assert(first, "the body has no @@MARK@@ marker")
   prefix = string.sub(body, 1, first - 1)
   suffix = string.sub(body, last + 1)
   tag = (args[3] or "bench") .. "-" .. tostring(tid)
   wrk.method = "POST"
   wrk.headers["Content-Type"] = args[2] or "application/json"
end

function request()
   counter = counter + 1
   return wrk.format(nil, nil, nil, prefix .. tag .. "-" .. counter .. suffix)
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      'WRK_RESULT {"requests": %d, "duration_us": %d, "bytes_read": %d, "connect": %d, '
         .. '"read": %d, "write": %d, "status": %d, "timeout": %d, '
         .. '"p50_us": %d, "p99_us": %d, "max_us": %d}\n',
      summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write,
      e.status, e.timeout, latency:percentile(50), latency:percentile(99), latency.max))
end
