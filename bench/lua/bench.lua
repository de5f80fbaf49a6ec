-- One wrk script for every bench run (wrk 4.x, LuaJIT). Usage:
--   WRK_JSON=out.json wrk -t1 -c32 -d10s -H 'Authorization: Basic …' \
--     -s bench/lua/bench.lua http://127.0.0.1:PORT -- MODE TARGET [FILE] [ARGS…]
-- Modes:
--   static   TARGET is the path, sent as is.
--   rotate   TARGET is a path template; each request picks a random line of FILE (columns
--            separated by spaces) and replaces {1}, {2}, … with its columns.
--   register TARGET is "/v2/Services/IS…/Users/"; ARGS are USERS PER_USER INSERT_RATIO. Each
--            request POSTs BindingType=fcm&Address=…&Endpoint=… for identity user-<random>:
--            with probability 1-INSERT_RATIO an existing binding (endpoint bench-ep-<u>-<k>,
--            address bench-addr-<u>-<k>, as parley-bench-seed names them), so the registration
--            refreshes it; otherwise a new endpoint/address (an insert).
-- done() writes one JSON object to $WRK_JSON (req/s, latency percentiles in µs, errors;
-- err_status counts answers that were not 2xx/3xx). No response() hook: it would make wrk
-- parse every body and cost the client more on big list pages than on /healthz.

local mode, target
local lines = {}
local users, per_user, insert_ratio = 0, 0, 0
local counter = 0
local tag = ""

local function split(line)
  local cols = {}
  for w in line:gmatch("%S+") do cols[#cols + 1] = w end
  return cols
end

function init(args)
  mode = args[1]
  target = args[2]
  local seed = os.time() * 1000 + math.floor((os.clock() * 1e6) % 1000)
  math.randomseed(seed)
  tag = string.format("%x", seed)
  if mode == "rotate" then
    for line in io.lines(args[3]) do
      if #line > 0 then lines[#lines + 1] = split(line) end
    end
    assert(#lines > 0, "empty sample file " .. args[3])
  elseif mode == "register" then
    users = tonumber(args[3])
    per_user = tonumber(args[4])
    insert_ratio = tonumber(args[5] or "0.1")
    wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
  end
end

function request()
  if mode == "static" then
    return wrk.format("GET", target)
  elseif mode == "rotate" then
    local cols = lines[math.random(#lines)]
    local path = target:gsub("{(%d)}", function(d) return cols[tonumber(d)] end)
    return wrk.format("GET", path)
  else
    local u = math.random(0, users - 1)
    local endpoint, address
    if math.random() < insert_ratio then
      counter = counter + 1
      endpoint = string.format("bench-new-ep-%s-%d", tag, counter)
      address = string.format("bench-new-addr-%s-%d", tag, counter)
    else
      local k = math.random(0, per_user - 1)
      endpoint = string.format("bench-ep-%d-%d", u, k)
      address = string.format("bench-addr-%d-%d", u, k)
    end
    local body = "BindingType=fcm&Address=" .. address .. "&Endpoint=" .. endpoint
    return wrk.format("POST", target .. "user-" .. u .. "/Bindings", nil, body)
  end
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
