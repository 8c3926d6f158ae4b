-- SigV4 signatures per second for an emr-containers StartJobRun request
-- (POST https://emr-containers.us-east-1.amazonaws.com/virtualclusters/<id>/jobruns,
-- a 1.5 KB JSON body, Content-Type + User-Agent, session credentials), side by side:
--   lua      emrflow.sigv4.sign (the Lua API)
--   c        ef_sigv4_sign (bench/sigv4/c_bench.c, linked with build/obj/ef_*.o)
--   floor    the bare OpenSSL work any signer must do: sha256(body) +
--            sha256(canonical request) + one HMAC-SHA256 with a cached key
--   botocore botocore's SigV4Auth.add_auth (Debian python3-botocore)
-- Goals: c within 1.5x of the floor; lua at least 10x faster than botocore.
--
-- Run from the repo root:  lua5.4 bench/sigv4_bench.lua [--quick] [--no-write]
-- It builds the core (make), compiles the C bench with the exact flags make uses
-- for src/ef_sigv4.c, and writes bench/RESULTS.sigv4.md (unless --no-write).
-- Every figure is the best of several rounds of CPU time (os.clock, CPU-time
-- clocks in C and Python), so other work on a shared machine disturbs it less.
package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
package.cpath = "build/?.so;" .. package.cpath

local quick, write = false, true
for _, a in ipairs(arg) do
  if a == "--quick" then quick = true
  elseif a == "--no-write" then write = false
  else
    io.stderr:write("usage: lua5.4 bench/sigv4_bench.lua [--quick] [--no-write]\n")
    os.exit(2)
  end
end
local ROUND_S = quick and 0.1 or 0.3
local ROUNDS = quick and 3 or 9

local function sh(cmd)
  local p = assert(io.popen(cmd .. " 2>&1"))
  local out = p:read("a")
  local ok, _, code = p:close()
  return out, ok, code
end

local function die(msg)
  io.stderr:write("sigv4_bench: ", msg, "\n")
  os.exit(1)
end

-- 1. build the core, then the C bench with make's own compile line
do
  local out, ok = sh("make -s all")
  if not ok then die("make failed:\n" .. out) end
end
local compile = sh("make -s -n -B build/obj/ef_sigv4.o"):match("([^\n]*%-c src/ef_sigv4%.c[^\n]*)")
if not compile then die("cannot find make's compile command for src/ef_sigv4.c") end
local cc_flags = compile:gsub("%s%-c src/ef_sigv4%.c%s+%-o%s+%S+", "")
local libs = sh("pkg-config --libs libcrypto"):gsub("%s+$", "")
local cbench = "build/sigv4_c_bench"
local cc_cmd = string.format("%s -o %s bench/sigv4/c_bench.c build/obj/ef_sigv4.o build/obj/ef_buf.o %s",
                             cc_flags, cbench, libs)
do
  local out, ok = sh(cc_cmd)
  if not ok then die("compiling the C bench failed:\n" .. cc_cmd .. "\n" .. out) end
end

local sigv4 = require "emrflow.sigv4"

-- 2. the request: a realistic StartJobRun body of about 1.5 KB
local body = table.concat({
  '{"name":"nightly-sessionization-2015-08-30",',
  '"clientToken":"5f4c1a9e-1b0c-4f7e-9a51-1d2a6e0c9b7f",',
  '"executionRoleArn":"arn:aws:iam::123456789012:role/emr-on-eks-job-execution-role",',
  '"releaseLabel":"emr-6.15.0-latest",',
  '"jobDriver":{"sparkSubmitJobDriver":{',
  '"entryPoint":"s3://example-bucket/jobs/sessionize/main.py",',
  '"entryPointArguments":["--date","2015-08-30","--input","s3://example-bucket/raw/clicks/",',
  '"--output","s3://example-bucket/curated/sessions/"],',
  '"sparkSubmitParameters":"--conf spark.executor.instances=8 --conf spark.executor.memory=8G ',
  '--conf spark.executor.cores=4 --conf spark.driver.cores=2 ',
  '--py-files s3://example-bucket/jobs/sessionize/deps.zip"}},',
  '"configurationOverrides":{"applicationConfiguration":[{"classification":"spark-defaults",',
  '"properties":{"spark.dynamicAllocation.enabled":"false",',
  '"spark.kubernetes.container.image":"123456789012.dkr.ecr.us-east-1.amazonaws.com/spark:6.15",',
  '"spark.sql.shuffle.partitions":"400","spark.eventLog.enabled":"true",',
  '"spark.kubernetes.executor.podNamePrefix":"sessionize",',
  '"spark.hadoop.hive.metastore.client.factory.class":',
  '"com.amazonaws.glue.catalog.metastore.AWSGlueDataCatalogHiveClientFactory"}}],',
  '"monitoringConfiguration":{"persistentAppUI":"ENABLED",',
  '"cloudWatchMonitoringConfiguration":{"logGroupName":"/emr-on-eks/analytics",',
  '"logStreamNamePrefix":"sessionize"},',
  '"s3MonitoringConfiguration":{"logUri":"s3://example-bucket/emr-logs/"}}},',
  '"tags":{"team":"analytics","pipeline":"sessionize","env":"prod","owner":"data-platform",',
  '"cost-center":"cc-4242","schedule":"nightly","tier":"gold","retention":"90d"}}',
})
local body_file = os.tmpname()
do
  local f = assert(io.open(body_file, "wb"))
  f:write(body)
  f:close()
end

local request = {
  method = "POST",
  url = "https://emr-containers.us-east-1.amazonaws.com/virtualclusters/abc123/jobruns",
  headers = { { "Content-Type", "application/json" }, { "User-Agent", "emrflow/0.1 lua/5.4" } },
  body = body,
  region = "us-east-1",
  service = "emr-containers",
  credentials = {
    access_key_id = "AKIDEXAMPLE",
    secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
    session_token = "FwoGZXIvYXdzEXAMPLE//////////wEaDEXAMPLESESSIONTOKEN+/=",
  },
  time = 1440938160,
}

-- 3. the Lua API: best of ROUNDS rounds
local function lua_round()
  local n, t0 = 0, os.clock()
  local t
  repeat
    for _ = 1, 500 do sigv4.sign(request) end
    n = n + 500
    t = os.clock() - t0
  until t >= ROUND_S
  return t / n * 1e9
end

local sign_once = sigv4.sign(request)
local best_lua = math.huge
for _ = 1, ROUNDS do
  collectgarbage()
  best_lua = math.min(best_lua, lua_round())
end

-- 4. C level and the floor (alternating inside one process)
local c_out, c_ok = sh(string.format("%s %s %g %d", cbench, body_file, 3 * ROUND_S, ROUNDS))
if not c_ok then die("C bench failed:\n" .. c_out) end
local c_ns = tonumber(c_out:match("\nc ([%d.]+)") or c_out:match("^c ([%d.]+)"))
local floor_ns = tonumber(c_out:match("\nfloor ([%d.]+)"))
local floor_keyed_ns = tonumber(c_out:match("floor_keyed ([%d.]+)"))
local creq_bytes = tonumber(c_out:match("creq_bytes (%d+)"))
local c_sig = c_out:match("signature (%x+)")
if c_sig ~= sign_once.signature then
  die("the C bench signed a different request (signature differs from the Lua API's)")
end

-- 5. botocore
local py_out, py_ok = sh(string.format("/usr/bin/python3 bench/sigv4/botocore_bench.py %s %g %d",
                                       body_file, ROUND_S, math.max(3, ROUNDS // 3)))
local boto_ns = py_ok and tonumber(py_out:match("botocore ([%d.]+)")) or nil
local boto_version = py_out:match("botocore_version (%S+)") or "?"
os.remove(body_file)

-- 6. report
local function per_s(ns) return ns and string.format("%.0f", 1e9 / ns) or "n/a" end
local function us(ns) return ns and string.format("%.2f", ns / 1000) or "n/a" end
local c_vs_floor = c_ns / floor_ns
local boto_vs_lua = boto_ns and boto_ns / best_lua or nil

local rows = {
  { "Lua API `sigv4.sign`", best_lua },
  { "C `ef_sigv4_sign`", c_ns },
  { "OpenSSL floor (sha256 body + sha256 creq + 1 HMAC)", floor_ns },
  { "OpenSSL floor, HMAC context keyed once (as the signer)", floor_keyed_ns },
  { "botocore " .. boto_version .. " `SigV4Auth.add_auth`", boto_ns },
}
local lines = {
  "| what | signatures/s | µs each |",
  "| --- | ---: | ---: |",
}
for _, r in ipairs(rows) do
  lines[#lines + 1] = string.format("| %s | %s | %s |", r[1], per_s(r[2]), us(r[2]))
end
local table_text = table.concat(lines, "\n")
local goals = string.format(
  "- C level / floor = **%.2fx** (goal: within 1.5x) — %s; against the keyed-context floor %.2fx\n" ..
  "- botocore / Lua API = **%s** (goal: Lua at least 10x faster) — %s",
  c_vs_floor, c_vs_floor <= 1.5 and "met" or "NOT met", c_ns / floor_keyed_ns,
  boto_vs_lua and string.format("%.1fx", boto_vs_lua) or "n/a",
  boto_vs_lua and (boto_vs_lua >= 10 and "met" or "NOT met") or "botocore not available")

print(string.format("body %d bytes, canonical request %d bytes, best of %d rounds of %.1f s CPU",
                    #body, creq_bytes, ROUNDS, ROUND_S))
print(table_text)
print(goals)

if write then
  local function one(cmd) return (sh(cmd):gsub("%s+$", "")) end
  local doc = {
    "# emrflow.sigv4 benchmark",
    "",
    "Command (from the repo root): `lua5.4 bench/sigv4_bench.lua` (it runs `make`, compiles",
    "`bench/sigv4/c_bench.c` with make's own compile line for `src/ef_sigv4.c` and links",
    "`build/obj/ef_sigv4.o build/obj/ef_buf.o`; botocore runs in `/usr/bin/python3`).",
    "",
    string.format("Machine: `nproc` = %s, CPU \"%s\", %s, Lua %s, OpenSSL %s. Date: %s.",
                  one("nproc"), one("grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'"),
                  one(". /etc/os-release; echo $PRETTY_NAME"),
                  one("lua5.4 -v"):match("%d+%.%d+%.%d+") or _VERSION,
                  one("pkg-config --modversion libcrypto"), os.date("!%Y-%m-%d %H:%M UTC")),
    "",
    string.format("Request: emr-containers StartJobRun, POST `%s`, %d-byte JSON body,",
                  request.url, #body),
    string.format("Content-Type and User-Agent headers, session credentials; canonical request %d bytes.",
                  creq_bytes),
    "Each signature hashes the body; the signing key is cached (steady state). Figures are best",
    string.format("rounds of CPU time: Lua %d rounds of %.1f s; C and the two floors %d rounds of %.1f s",
                  ROUNDS, ROUND_S, ROUNDS, 3 * ROUND_S),
    "in which the three alternate in batches of 200 (so they share the machine's conditions);",
    string.format("botocore %d rounds of %.1f s. The machine is shared with other work, so figures move by",
                  math.max(3, ROUNDS // 3), ROUND_S),
    "up to ±30 % between runs. The C bench checks it signs the very request the Lua API signs.",
    "",
    table_text,
    "",
    goals,
    "",
    "The floor is the OpenSSL work any SigV4 signer must do for this request, with fetched",
    "algorithms and reused contexts: SHA-256 of the body, SHA-256 of a buffer the size of the",
    "canonical request, one HMAC-SHA256 (`EVP_MAC_init` with the cached 32-byte key) of the",
    "string to sign. The signer keeps its final HMAC context keyed for the cached key and",
    "re-initialises it (`EVP_MAC_init` with a NULL key), which saves re-keying; the second",
    "floor line does the same, for the strictest comparison.",
    "The signer's extra cost is building the canonical request (URL parsing,",
    "path normalisation and encoding, header canonicalisation and sorting), the string to sign",
    "and the Authorization value. The Lua API adds reading the request table and building the",
    "result table (headers list, nine strings).",
    "",
  }
  local f = assert(io.open("bench/RESULTS.sigv4.md", "w"))
  f:write(table.concat(doc, "\n"))
  f:close()
  print("wrote bench/RESULTS.sigv4.md")
end
