-- wrk script for bench/bench_peer.py: every wrk thread rotates its own refresh
-- token family, always presenting the newest refresh token it holds.
--
--   wrk -t N -c N -d SECONDS+1s -s bench/wrk/rotate.lua URL/token \
--       -H "Authorization: Basic ..." -- TOKENS_FILE OUT_FILE SECONDS
--
-- wrk keeps Lua state per thread, not per connection, so run as many threads as
-- connections (-t N -c N): each thread then owns one keep-alive connection and one
-- family, and its requests are strictly sequential. Line i of TOKENS_FILE holds
-- thread i's first refresh token.
--
-- Each thread stops itself (wrk.thread:stop()) at the first response SECONDS after
-- its first request, before it sends another request, so the token it holds at the
-- end was never presented: the bench can then prove it still refreshes. wrk's own
-- -d is the safety net one second later. An invalid_grant to the newest token means
-- the server lost a live token: the thread records it and stops (its family is
-- gone). Other errors are counted and the same token is presented again.
--
-- done() writes OUT_FILE as JSON: the latency percentiles (wrk's histogram, in
-- microseconds), socket errors, and per thread the statuses seen, the 200s that
-- carried a new refresh token, the measurement window and the final token.

local ffi = require("ffi")
ffi.cdef([[
typedef struct { long tv_sec; long tv_nsec; } rotcert_timespec;
int clock_gettime(int clk_id, rotcert_timespec *tp);
]])
local CLOCK_MONOTONIC = 1
local timespec = ffi.new("rotcert_timespec")

local function now()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, timespec)
  return tonumber(timespec.tv_sec) + tonumber(timespec.tv_nsec) * 1e-9
end

local function form_escape(value)
  return (value:gsub("[^%w%-%._~]", function(c)
    return string.format("%%%02X", string.byte(c))
  end))
end

-- Main state: setup() runs once per thread, before the thread's init().
local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("id", #threads)
end

-- Thread state.
token = nil       -- the newest refresh token this thread holds
presented = nil   -- the token of the request in flight, nil when none
ok = 0            -- 200s that carried a new refresh token
no_token = 0      -- 200s without one
lost = 0          -- 400s to the newest token
lost_token = nil
statuses = {}
first = nil       -- when the first request went out
last = nil        -- when the last response came back
stopped = false   -- stopped itself at the deadline or on a lost token

local path
local headers
local stop_at
out_file = nil

function init(args)
  local tokens_file, seconds = args[1], tonumber(args[3])
  local i = 0
  for line in io.lines(tokens_file) do
    i = i + 1
    if i == id then
      token = line:match("^%s*(%S+)")
    end
  end
  if token == nil then
    error("no refresh token for thread " .. id .. " in " .. tokens_file)
  end
  path = wrk.path
  -- wrk.format() takes its headers argument instead of wrk.headers (the -H ones).
  headers = { ["Content-Type"] = "application/x-www-form-urlencoded" }
  for name, value in pairs(wrk.headers) do
    headers[name] = value
  end
  stop_at = seconds
  out_file = args[2]
end

function request()
  local t = now()
  if first == nil then
    first = t
    stop_at = t + stop_at
  end
  presented = token
  return wrk.format(
    "POST",
    path,
    headers,
    "grant_type=refresh_token&refresh_token=" .. form_escape(token)
  )
end

function response(status, headers, body)
  last = now()
  statuses[status] = (statuses[status] or 0) + 1
  local sent = presented
  presented = nil
  if status == 200 then
    local fresh = body:match('"refresh_token"%s*:%s*"([^"]+)"')
    if fresh then
      ok = ok + 1
      token = fresh
    else
      no_token = no_token + 1
    end
  elseif status == 400 and body:find('"invalid_grant"', 1, true) then
    lost = lost + 1
    lost_token = sent
    stopped = true
    wrk.thread:stop()
    return
  end
  if last >= stop_at then
    stopped = true
    wrk.thread:stop()
  end
end

local function json_string(value)
  return '"' .. tostring(value):gsub('[%c"\\]', function(c)
    return string.format("\\u%04x", string.byte(c))
  end) .. '"'
end

local function json_value(value)
  if value == nil then
    return "null"
  elseif type(value) == "string" then
    return json_string(value)
  elseif type(value) == "boolean" then
    return tostring(value)
  else
    return string.format("%.17g", value)
  end
end

function done(summary, latency, requests)
  local out = {}
  local function add(s)
    table.insert(out, s)
  end
  add("{")
  add('"duration_us": ' .. summary.duration .. ", ")
  add('"requests": ' .. summary.requests .. ", ")
  add('"errors": {')
  add('"connect": ' .. summary.errors.connect)
  add(', "read": ' .. summary.errors.read)
  add(', "write": ' .. summary.errors.write)
  add(', "status": ' .. summary.errors.status)
  add(', "timeout": ' .. summary.errors.timeout .. "}, ")
  add('"latency_us": {')
  add('"min": ' .. latency.min)
  add(', "mean": ' .. json_value(latency.mean))
  add(', "max": ' .. latency.max)
  for _, p in ipairs({ 50, 90, 99, 99.9 }) do
    add(', "p' .. p .. '": ' .. latency:percentile(p))
  end
  add("}, ")
  add('"threads": [')
  for i, thread in ipairs(threads) do
    if i > 1 then
      add(", ")
    end
    add("{")
    for j, key in ipairs({
      "id", "ok", "no_token", "lost", "lost_token", "token", "presented",
      "first", "last", "stopped",
    }) do
      if j > 1 then
        add(", ")
      end
      add(json_string(key) .. ": " .. json_value(thread:get(key)))
    end
    add(', "statuses": {')
    local sep = ""
    for status, count in pairs(thread:get("statuses")) do
      add(sep .. json_string(status) .. ": " .. count)
      sep = ", "
    end
    add("}}")
  end
  add("]}\n")
  local file = assert(io.open(threads[1]:get("out_file"), "w"))
  file:write(table.concat(out))
  file:close()
end
