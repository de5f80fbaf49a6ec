-- wrk script for bench/chat.sh: POST a message (form body Body=…) into a channel.
--   WRK_JSON=out.json wrk … -s bench/lua/post.lua http://127.0.0.1:PORT -- SERVICE_SID CHANNELS_FILE
-- CHANNELS_FILE has one channel SID per line; each request picks one at random (a file with
-- one line = every writer posts into the same channel). done() writes the same JSON object as
-- bench.lua (req/s, latency percentiles in µs, errors; err_status = non-2xx/3xx answers).
-- With WEBHOOKS=1 in the environment every request carries `X-Twilio-Webhook-Enabled: true`.
local service
local channels = {}
local counter = 0
local tag = ""

function init(args)
  service = args[1]
  for line in io.lines(args[2]) do
    if #line > 0 then channels[#channels + 1] = line end
  end
  assert(#channels > 0, "empty channel file " .. args[2])
  local seed = os.time() * 1000 + math.floor((os.clock() * 1e6) % 1000)
  math.randomseed(seed)
  tag = string.format("%x", seed)
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
  if os.getenv("WEBHOOKS") == "1" then
    wrk.headers["X-Twilio-Webhook-Enabled"] = "true"
  end
end

function request()
  counter = counter + 1
  local ch = channels[math.random(#channels)]
  local body = "Body=bench+message+" .. tag .. "-" .. counter .. "&From=bench"
  return wrk.format("POST", "/v2/Services/" .. service .. "/Channels/" .. ch .. "/Messages", nil, body)
end

function done(summary, latency, requests)
  local out = os.getenv("WRK_JSON")
  if not out then return end
  local f = assert(io.open(out, "w"))
  local e = summary.errors
  f:write(string.format(
    '{"requests":%d,"duration_us":%d,"rps":%.1f,"p50_us":%d,"p90_us":%d,"p99_us":%d,' ..
    '"mean_us":%.1f,"max_us":%d,"err_connect":%d,"err_read":%d,"err_write":%d,' ..
    '"err_status":%d,"err_timeout":%d}\n',
    summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.mean, latency.max, e.connect, e.read, e.write, e.status, e.timeout))
  f:close()
end
