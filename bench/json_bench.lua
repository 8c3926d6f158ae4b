-- Benchmark: emrflow.json vs Debian's lua-cjson, side by side in one run.
--   LUA_CPATH="build/?.so;;" LUA_PATH="lua/?.lua;lua/?/init.lua;;" lua5.4 bench/json_bench.lua
-- Decodes and encodes one generated ~256 KiB document and many ~200-byte
-- documents; prints ops/s, MB/s and the time ratio (emrflow / cjson).
local json = require "emrflow.json"
local cjson = require "cjson"

local seed = 42
local function rand(n)
  seed = (seed * 1103515245 + 12345) % 2147483648
  return seed % n + 1
end

local words = { "spark", "emr", "eks", "job", "run", "driver", "executor", "s3://bucket/path/x.py",
  "arn:aws:emr-containers:us-east-1:123456789012:/virtualclusters/abc", "RUNNING", "COMPLETED",
  "caf\u{e9}", "na\u{ef}ve \u{2014} dash", "line\nbreak", "tab\tsep", "quote \"q\"", "x" }

local function sentence(n)
  local t = {}
  for i = 1, n do t[i] = words[rand(#words)] end
  return table.concat(t, " ")
end

-- A job-run-like record: nested objects, arrays, strings, ints, floats, bools, nulls.
local function record(i)
  return {
    id = string.format("00000003%08x", i), name = "job-" .. i, state = words[9 + rand(3)],
    createdAt = 1700000000 + i * 17, retries = rand(5) - 1, progress = rand(1000) / 8,
    ratio = rand(100000) / 7, enabled = rand(2) == 1,
    finishedAt = (rand(3) == 1) and cjson.null or 1700009999,
    tags = { team = "data", env = (rand(2) == 1) and "prod" or "dev", note = sentence(3) },
    jobDriver = { sparkSubmitJobDriver = {
      entryPoint = words[8], entryPointArguments = { "--input", "s3://in/" .. i, "--n", tostring(i) },
      sparkSubmitParameters = "--conf spark.executor.instances=" .. rand(20),
    } },
    metrics = { rand(1000), rand(1000), rand(1000) / 3, rand(1000) },
    description = sentence(6),
  }
end

local function gen_big(target)
  local list, i = {}, 0
  local text
  repeat
    for _ = 1, 5 do
      i = i + 1
      list[i] = record(i)
    end
    text = cjson.encode({ jobRuns = list, nextToken = "tok", count = i })
  until #text >= target
  return text
end

local function gen_small(count)
  local docs = {}
  for i = 1, count do
    docs[i] = cjson.encode({
      id = string.format("j-%010d", i), state = words[9 + rand(3)], attempt = rand(5),
      createdAt = 1700000000 + i, score = rand(10000) / 16, ok = rand(2) == 1, err = cjson.null,
      args = { "--n", tostring(i) }, info = { region = "us-east-1", cluster = "vc-" .. rand(99) },
    })
  end
  return docs
end

-- CPU seconds per op of fn(reps), run for at least `min_s`.
local function run(fn, reps, min_s)
  local n, t0 = 0, os.clock()
  local dt
  repeat
    fn(reps)
    n = n + reps
    dt = os.clock() - t0
  until dt >= min_s
  return dt / n
end

-- The two sides alternate, ROUNDS times, and each keeps its best round, so
-- load from other processes on the machine hits both alike.
local ROUNDS = 7
local function measure2(f1, f2, reps)
  local b1, b2 = math.huge, math.huge
  for _ = 1, ROUNDS do
    collectgarbage()
    b1 = math.min(b1, run(f1, reps, 0.12))
    collectgarbage()
    b2 = math.min(b2, run(f2, reps, 0.12))
  end
  return b1, b2
end

local function measure(fn, reps)
  local best = math.huge
  for _ = 1, ROUNDS do best = math.min(best, run(fn, reps, 0.1)) end
  return best
end

local big = gen_big(256 * 1024)
local small = gen_small(1000)
local small_bytes = 0
for _, s in ipairs(small) do small_bytes = small_bytes + #s end
local small_avg = small_bytes / #small

local ours_big, cj_big = json.decode(big), cjson.decode(big)
local ours_small, cj_small = {}, {}
for i, s in ipairs(small) do
  ours_small[i], cj_small[i] = json.decode(s), cjson.decode(s)
end
assert(#json.encode(ours_big) > 0.9 * #big)

local rows = {}
local function bench(label, bytes, f_ours, f_cjson, reps)
  local t_ours, t_cj = measure2(f_ours, f_cjson, reps)
  rows[#rows + 1] = { label, 1 / t_ours, bytes / t_ours / 1e6, 1 / t_cj, bytes / t_cj / 1e6, t_ours / t_cj }
end

local ndocs = #small
bench(string.format("decode %d B doc", #big), #big,
  function(r) for _ = 1, r do json.decode(big) end end,
  function(r) for _ = 1, r do cjson.decode(big) end end, 5)
bench(string.format("encode %d B doc", #big), #big,
  function(r) for _ = 1, r do json.encode(ours_big) end end,
  function(r) for _ = 1, r do cjson.encode(cj_big) end end, 5)
bench(string.format("decode small (%.0f B avg)", small_avg), small_avg,
  function(r) for _ = 1, r do for i = 1, ndocs do json.decode(small[i]) end end end,
  function(r) for _ = 1, r do for i = 1, ndocs do cjson.decode(small[i]) end end end, 1)
bench(string.format("encode small (%.0f B avg)", small_avg), small_avg,
  function(r) for _ = 1, r do for i = 1, ndocs do json.encode(ours_small[i]) end end end,
  function(r) for _ = 1, r do for i = 1, ndocs do cjson.encode(cj_small[i]) end end end, 1)
-- The small-document rows time `ndocs` documents per op; report per document.
for i = 3, 4 do
  local r = rows[i]
  r[2], r[4] = r[2] * ndocs, r[4] * ndocs
  r[3], r[5] = r[3] * ndocs, r[5] * ndocs
end

-- Extra (no cjson counterpart with the same semantics): plain Lua tables,
-- whose keys emrflow sorts, and json.keys / json.set.
local plain = cjson.decode(big)
local t_plain = measure(function(r) for _ = 1, r do json.encode(plain) end end, 5)
local obj = json.decode(small[1])
local t_keys = measure(function(r) for _ = 1, r do json.keys(obj) end end, 10000)
local t_set = measure(function(r)
  for _ = 1, r do
    local o = json.object()
    for k = 1, 10 do json.set(o, words[k], k) end
  end
end, 1000)

print(string.format("%-28s %12s %9s %12s %9s %7s", "case", "emrflow op/s", "MB/s", "cjson op/s", "MB/s",
  "ratio"))
for _, r in ipairs(rows) do
  print(string.format("%-28s %12.0f %9.1f %12.0f %9.1f %7.2f", r[1], r[2], r[3], r[4], r[5], r[6]))
end
print(string.format("ratio = emrflow time / cjson time (<= 1.5 is the goal)"))
print(string.format("encode %d B doc from plain tables (sorted keys): %.0f op/s, %.1f MB/s",
  #big, 1 / t_plain, #big / t_plain / 1e6))
print(string.format("json.keys of a %d-key object: %.2f us; build a 10-key object with json.set: %.2f us",
  #json.keys(obj), t_keys * 1e6, t_set * 1e6))
