-- core.http: the libcurl multi transport, against the loopback fake_echo server.
local core = require "emrflow.core"
local cjson = require "cjson"
local fake = require "support.fake"

-- Sub-second wall clock (os.time() counts whole seconds: a 200 ms wait measured with it
-- reads as 0 or 1 s depending on where the second boundary falls).
local now = core.now

-- Runs one request to completion on poller p; returns the completion.
local function run(p, req)
  local id = p:add(req)
  local deadline = now() + 30
  while now() < deadline do
    for _, c in ipairs(p:step(50)) do
      if c.id == id then return c end
    end
  end
  error("request did not complete")
end

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local function base64(s)
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = s:byte(i, i + 2)
    local n = (a << 16) | ((b or 0) << 8) | (c or 0)
    for k = 1, 4 do
      local idx = (n >> (6 * (4 - k))) & 63
      out[#out + 1] = B64:sub(idx + 1, idx + 1)
    end
    if not b then out[#out - 1], out[#out] = "=", "="
    elseif not c then out[#out] = "=" end
  end
  return table.concat(out)
end

local function header(headers, name)
  for _, h in ipairs(headers) do
    if h[1]:lower() == name:lower() then return h[2] end
  end
end

-- libcurl reads the proxy variables itself; a child process gets them in its environment.
local function child(env, url, extra)
  local code = ([[
    local core = require "emrflow.core"
    local p = core.http.poller()
    local id = p:add{ method = "GET", url = %q, %s }
    while true do
      for _, c in ipairs(p:step(50)) do
        if c.id == id then
          io.write(c.err and ("ERR " .. c.err.code) or ("HTTP " .. c.response.status))
          os.exit(0)
        end
      end
    end]]):format(url, extra or "")
  local cmd = ("env %s LUA_PATH=%q LUA_CPATH=%q lua5.4 -e %q"):format(env, package.path,
    package.cpath, code)
  local f = assert(io.popen(cmd, "r"))
  local out = f:read("a")
  f:close()
  return out
end

local function header_names(headers)
  local out = {}
  for _, h in ipairs(headers) do out[#out + 1] = h[1] end
  return out
end

describe("core.http", function()
  local srv

  setup(function()
    srv = fake.start("fake_echo")
  end)

  teardown(function()
    if srv then srv:stop() end
  end)

  before_each(function()
    srv:reset()
  end)

  describe("round trips", function()
    local cases = {
      { method = "GET", path = "/a/b", query = "x=1&y=%2F" },
      { method = "POST", path = "/jobs", body = '{"name":"j1"}' },
      { method = "PUT", path = "/put", body = "plain text" },
      { method = "PATCH", path = "/patch", body = "p" },
      { method = "DELETE", path = "/virtualclusters/abc" },
      { method = "DELETE", path = "/with-body", body = "gone" },
      { method = "GET", path = "/get-with-body", body = "odd but allowed" },
      { method = "POST", path = "/empty", body = "" },
      { method = "POST", path = "/binary", body = "a\0b\1\2\255c" },
    }
    -- no_resend feeds the body through a read callback instead of a copied buffer:
    -- what goes out must be the same
    for _, case in ipairs(cases) do for _, no_resend in ipairs{ false, true } do
      it(("sends %s %s%s as given%s"):format(case.method, case.path,
        case.body and (" with a " .. #case.body .. "-byte body") or "",
        no_resend and " (no_resend)" or ""), function()
        local p <close> = core.http.poller()
        local url = srv.url .. case.path .. (case.query and ("?" .. case.query) or "")
        local c = run(p, { method = case.method, url = url, body = case.body,
                           headers = { { "X-Test", "1" } }, no_resend = no_resend })
        assert.is_nil(c.err)
        assert.equal(200, c.response.status)
        local rec = srv:requests()[1]
        assert.equal(case.method, rec.method)
        assert.equal(case.path, rec.path)
        assert.equal(case.query or "", rec.query)
        if rec.body_base64 then
          assert.equal(base64(case.body), rec.body_base64)
        else
          assert.equal(case.body or "", rec.body)
        end
        if case.body and (#case.body > 0 or case.method == "POST") then
          assert.equal(tostring(#case.body), header(rec.headers, "Content-Length"))
        else
          assert.is_nil(header(rec.headers, "Content-Length"))
        end
        if case.method ~= "HEAD" then
          local doc = cjson.decode(c.response.body)
          assert.equal(case.method, doc.method)
        end
      end)
    end end

    it("sends HEAD without reading a body", function()
      local p <close> = core.http.poller()
      local c = run(p, { method = "HEAD", url = srv.url .. "/h" })
      assert.equal(200, c.response.status)
      assert.equal("", c.response.body)
      assert.equal("HEAD", srv:requests()[1].method)
    end)

    it("sends exactly the headers given, in order, and adds only Host and Content-Length", function()
      local p <close> = core.http.poller()
      local sent = {
        { "X-Amz-Date", "20240101T000000Z" }, { "x-lower-case", "v" },
        { "Authorization", "AWS4-HMAC-SHA256 Credential=AKID/..." }, { "X-Empty", "" },
        { "X-Spaces", "a  b" },
      }
      run(p, { method = "POST", url = srv.url .. "/h", headers = sent, body = "{}" })
      local rec = srv:requests()[1]
      assert.same({ "Host", "X-Amz-Date", "x-lower-case", "Authorization", "X-Empty", "X-Spaces",
                    "Content-Length" }, header_names(rec.headers))
      for i, h in ipairs(sent) do
        assert.same(h, rec.headers[i + 1])
      end
      for _, absent in ipairs{ "Expect", "Accept", "Content-Type", "User-Agent", "Accept-Encoding" } do
        assert.is_nil(header(rec.headers, absent), absent)
      end
    end)

    it("uses a Host header given by the caller (it is signed)", function()
      local p <close> = core.http.poller()
      run(p, { method = "GET", url = srv.url .. "/", headers = { { "Host", "emr-containers.test" } } })
      assert.same({ { "Host", "emr-containers.test" } }, srv:requests()[1].headers)
    end)

    it("sends Accept and Content-Type when they are given", function()
      local p <close> = core.http.poller()
      run(p, { method = "POST", url = srv.url .. "/", body = "{}",
               headers = { { "Content-Type", "application/x-amz-json-1.1" }, { "Accept", "*/*" } } })
      local rec = srv:requests()[1]
      assert.equal("application/x-amz-json-1.1", header(rec.headers, "content-type"))
      assert.equal("*/*", header(rec.headers, "accept"))
    end)

    it("sends a 1 MiB body intact, with and without no_resend", function()
      local p <close> = core.http.poller()
      local parts = {}
      for i = 1, 1024 * 1024 / 16 do parts[i] = ("%015d\n"):format(i) end
      local body = table.concat(parts)
      for _, no_resend in ipairs{ false, true } do
        local c = run(p, { method = "POST", url = srv.url .. "/big", body = body, no_resend = no_resend })
        assert.equal(body, cjson.decode(c.response.body).body)
      end
    end)

    it("returns response headers as ordered pairs with names as received", function()
      local p <close> = core.http.poller()
      local c = run(p, { method = "GET", url = srv.url .. "/headers?X-B=2&x-amzn-RequestId=r1&X-B=3" })
      local hs = c.response.headers
      assert.same({ "X-B", "2" }, hs[1])
      assert.same({ "x-amzn-RequestId", "r1" }, hs[2])
      assert.same({ "X-B", "3" }, hs[3])
      assert.same({ "Content-Length", "7" }, hs[4])
      assert.equal(4, #hs)
      assert.equal("headers", c.response.body)
    end)

    it("returns binary response bodies byte for byte", function()
      local p <close> = core.http.poller()
      local c = run(p, { method = "GET", url = srv.url .. "/bytes/70000" })
      local body = c.response.body
      assert.equal(70000, #body)
      for _, i in ipairs{ 0, 1, 255, 256, 69999 } do
        assert.equal(i % 256, body:byte(i + 1))
      end
    end)

    it("returns every HTTP status as a response, not an error", function()
      local p <close> = core.http.poller()
      for _, st in ipairs{ 201, 204, 400, 403, 404, 409, 500, 503 } do
        local c = run(p, { method = "GET", url = srv.url .. "/status/" .. st })
        assert.is_nil(c.err)
        assert.equal(st, c.response.status)
      end
    end)
  end)

  -- A poller keeps finished transfers (their buffers), its header blocks and the last
  -- parsed URL for the next request: nothing of one request may show in the next.
  describe("reuse between requests", function()
    it("gives each reply only its own headers and body, whatever came before", function()
      local p <close> = core.http.poller()
      local seq = {
        { path = "/bytes/70000", len = 70000 },
        { path = "/headers?A=1&B=2&C=3&D=4&E=5&F=6&G=7&H=8&I=9&J=10&K=11&L=12&M=13&N=14&O=15&P=16&Q=17",
          nheaders = 18, body = "headers" },
        { path = "/headers?Z=z", nheaders = 2, body = "headers" },
        { path = "/bytes/3", len = 3 },
        { path = "/status/204", status = 204, body = "" },
        { path = "/headers?Y=y", nheaders = 2, body = "headers" },
      }
      for round = 1, 2 do
        for _, step in ipairs(seq) do
          local c = run(p, { method = "GET", url = srv.url .. step.path })
          local r = c.response
          assert.is_nil(c.err)
          assert.equal(step.status or 200, r.status, step.path)
          if step.len then
            assert.equal(step.len, #r.body, step.path)
            assert.equal((step.len - 1) % 256, r.body:byte(-1))
          else
            assert.equal(step.body, r.body, step.path)
          end
          if step.nheaders then
            assert.equal(step.nheaders, #r.headers, step.path .. " round " .. round)
            assert.equal(step.path:match("%?(%a)="), r.headers[1][1])
          end
        end
      end
    end)

    it("sends each request to its own URL when URLs alternate or repeat", function()
      local p <close> = core.http.poller()
      local urls = { "/a?x=1", "/a?x=1", "/b/c", "/a?x=2", "/a?x=1", "/b/c", "/b/c" }
      for _, u in ipairs(urls) do run(p, { method = "GET", url = srv.url .. u }) end
      local got = {}
      for i, rec in ipairs(srv:requests()) do
        got[i] = rec.path .. (rec.query ~= "" and ("?" .. rec.query) or "")
      end
      assert.same(urls, got)
      assert.equal(1, p:stats().connections_opened)
    end)

    it("still rejects a bad URL after good ones, and accepts good ones after it", function()
      local p <close> = core.http.poller()
      run(p, { method = "GET", url = srv.url .. "/ok" })
      assert.has_error(function() p:add{ method = "GET", url = "ftp://127.0.0.1/" } end)
      assert.has_error(function() p:add{ method = "GET", url = srv.url .. "/a b" } end)
      local c = run(p, { method = "GET", url = srv.url .. "/ok" })
      assert.equal(200, c.response.status)
      assert.equal(2, #srv:requests())
    end)

    it("sends each request's own headers after requests with more, fewer or longer ones", function()
      local p <close> = core.http.poller()
      local long = ("v"):rep(3000)
      local sets = {
        { { "X-A", "1" }, { "X-B", long }, { "X-C", "" }, { "Accept", "*/*" } },
        { { "X-D", "4" } },
        {},
        { { "Content-Type", "text/plain" }, { "X-E", long .. "e" } },
        { { "X-F", "" } },
      }
      for _, hs in ipairs(sets) do
        run(p, { method = "POST", url = srv.url .. "/h", headers = hs, body = "x" })
      end
      for i, rec in ipairs(srv:requests()) do
        local want = { "Host" }
        for _, h in ipairs(sets[i]) do want[#want + 1] = h[1] end
        want[#want + 1] = "Content-Length"
        assert.same(want, header_names(rec.headers), "request " .. i)
        for k, h in ipairs(sets[i]) do assert.same(h, rec.headers[k + 1]) end
        for _, absent in ipairs{ "Expect", "Accept", "Content-Type" } do
          local given = false
          for _, h in ipairs(sets[i]) do given = given or h[1] == absent end
          if not given then assert.is_nil(header(rec.headers, absent), absent .. " in " .. i) end
        end
      end
    end)
  end)

  describe("connections", function()
    it("keeps one connection alive for 20 sequential requests", function()
      local p <close> = core.http.poller()
      for i = 1, 20 do
        local c = run(p, { method = i % 2 == 0 and "GET" or "POST", url = srv.url .. "/k/" .. i,
                           body = i % 2 == 1 and "b" or nil })
        assert.equal(200, c.response.status)
      end
      local st = p:stats()
      assert.equal(1, st.connections_opened)
      assert.equal(20, st.requests)
      assert.equal(20, st.completed)
      local fs = srv:stats()
      assert.equal(20, fs.requests)
      assert.equal(1, fs.connections)
      local conn = srv:requests()[1].connection
      for _, r in ipairs(srv:requests()) do assert.equal(conn, r.connection) end
    end)

    it("runs many requests concurrently in one poller", function()
      local p <close> = core.http.poller{ max_connections = 8 }
      local ids, seen = {}, {}
      local t0 = now()
      for i = 1, 32 do ids[p:add{ method = "GET", url = srv.url .. "/sleep/250?i=" .. i }] = i end
      assert.equal(32, p:pending())
      local done = 0
      while done < 32 and now() - t0 < 30 do
        for _, c in ipairs(p:step(100)) do
          assert.is_nil(c.err)
          assert.truthy(ids[c.id])
          assert.is_nil(seen[c.id])
          seen[c.id] = true
          done = done + 1
          assert.equal("i=" .. ids[c.id], cjson.decode(c.response.body).query)
        end
      end
      assert.equal(32, done)
      assert.equal(0, p:pending())
      -- 32 x 250 ms over 8 connections: about 1 s, far from the 8 s of one at a time
      assert.is_true(now() - t0 < 4)
      assert.is_true(p:stats().connections_opened <= 8)
      assert.is_true(srv:stats().connections <= 8)
    end)

    it("fails to connect to a closed port with code connect", function()
      local p <close> = core.http.poller()
      local c = run(p, { method = "GET", url = "http://127.0.0.1:1/" })
      assert.equal("connect", c.err.code)
      assert.is_true(c.err.retryable)
      assert.equal(core.error_mt, getmetatable(c.err))
      assert.matches("emrflow: connect", tostring(c.err))
    end)

    it("reports a TLS failure with code tls (verification is always on)", function()
      local p <close> = core.http.poller()
      local c = run(p, { method = "GET", url = "https://127.0.0.1:" .. srv.port .. "/" })
      assert.equal("tls", c.err.code)
      assert.is_false(c.err.retryable)
      local c2 = run(p, { method = "GET", url = "https://127.0.0.1:" .. srv.port .. "/",
                          ca_bundle = "/nonexistent/ca.pem" })
      assert.equal("tls", c2.err.code)
    end)
  end)

  describe("faults", function()
    local status_cases = { 429, 500, 503 }
    for _, st in ipairs(status_cases) do
      it("returns an injected " .. st .. " as a response with its body and headers", function()
        local p <close> = core.http.poller()
        srv:faults{ { kind = "status", status = st, body = { message = "Rate exceeded" },
                      headers = { ["x-amzn-ErrorType"] = "ThrottlingException" } } }
        local c = run(p, { method = "POST", url = srv.url .. "/x", body = "{}" })
        assert.equal(st, c.response.status)
        assert.equal("Rate exceeded", cjson.decode(c.response.body).message)
        assert.equal("ThrottlingException", header(c.response.headers, "x-amzn-ErrorType"))
        local after = run(p, { method = "POST", url = srv.url .. "/x", body = "{}" })
        assert.equal(200, after.response.status)
      end)
    end

    local error_cases = {
      { fault = { kind = "reset" }, code = "reset" },
      { fault = { kind = "lose_reply" }, code = "reset" },
      { fault = { kind = "truncate" }, code = "truncated" },
      { fault = { kind = "slow", seconds = 2 }, code = "timeout", timeout_ms = 300 },
    }
    for _, case in ipairs(error_cases) do
      for _, warm in ipairs{ false, true } do
        it(("turns %s into a retryable %s error (%s connection)"):format(case.fault.kind, case.code,
          warm and "reused" or "new"), function()
          local p <close> = core.http.poller()
          if warm then run(p, { method = "GET", url = srv.url .. "/warm" }) end
          srv:faults{ case.fault }
          local t0 = now()
          local c = run(p, { method = "POST", url = srv.url .. "/x", body = "{}",
                             timeout_ms = case.timeout_ms })
          assert.is_nil(c.response)
          assert.equal(case.code, c.err.code)
          assert.is_true(c.err.retryable)
          assert.is_string(c.err.message)
          -- timed out by timeout_ms, before the fake's reply after 2 s
          if case.timeout_ms then assert.is_true(now() - t0 < 1.9) end
          local recs = srv:requests{ path_prefix = "/x" }
          assert.equal(1, #recs)                  -- no silent retry below us
          assert.equal(case.fault.kind, recs[1].fault)
          local after = run(p, { method = "GET", url = srv.url .. "/after" })
          assert.equal(200, after.response.status)
        end)
      end
    end
  end)

  describe("the fake server framework", function()
    it("fires a fault only on matching requests, count times", function()
      local p <close> = core.http.poller()
      srv:faults{ { match = { method = "POST", path_prefix = "/virtualclusters" }, kind = "status",
                    status = 503, count = 2 } }
      local function st(method, path)
        return run(p, { method = method, url = srv.url .. path, body = "{}" }).response.status
      end
      assert.equal(200, st("GET", "/virtualclusters"))       -- method does not match
      assert.equal(200, st("POST", "/jobs"))                 -- path does not match
      assert.equal(503, st("POST", "/virtualclusters/a/jobruns"))
      assert.equal(503, st("POST", "/virtualclusters"))
      assert.equal(200, st("POST", "/virtualclusters"))      -- count used up
      assert.same({}, srv:control("GET", "/__fake/faults").faults)
      local posts = srv:requests{ method = "POST", path_prefix = "/virtualclusters" }
      assert.equal(3, #posts)
      assert.equal("status", posts[1].fault)
      assert.is_nil(posts[3].fault)
      local stats = srv:stats()
      assert.equal(5, stats.requests)
      assert.equal(2, stats.faults_fired)
    end)

    it("closes the connection after a close fault, and the client opens a new one", function()
      local p <close> = core.http.poller()
      srv:faults{ { kind = "close" } }
      assert.equal(200, run(p, { method = "GET", url = srv.url .. "/1" }).response.status)
      assert.equal(200, run(p, { method = "GET", url = srv.url .. "/2" }).response.status)
      assert.equal(2, p:stats().connections_opened)
      assert.equal(2, srv:stats().connections)
    end)

    it("reset clears requests, faults and counters", function()
      srv:faults{ { kind = "reset", count = 5 } }
      srv:reset()
      local p <close> = core.http.poller()
      assert.equal(200, run(p, { method = "GET", url = srv.url .. "/" }).response.status)
      local stats = srv:stats()
      assert.equal(1, stats.requests)
      assert.equal(0, stats.faults_fired)
    end)

    it("rejects an unknown fault kind", function()
      assert.has_error(function() srv:faults{ { kind = "explode" } } end)
    end)
  end)

  describe("poller", function()
    it("never completes a request inside add", function()
      local p <close> = core.http.poller()
      local id = p:add{ method = "GET", url = srv.url .. "/" }
      assert.equal("integer", math.type(id))
      assert.equal(1, p:pending())
      local c = run(p, { method = "GET", url = srv.url .. "/" })
      assert.truthy(c)
    end)

    it("cancels a request in flight", function()
      local p <close> = core.http.poller()
      local id = p:add{ method = "GET", url = srv.url .. "/sleep/1500" }
      p:step(50)
      assert.is_true(p:cancel(id))
      assert.equal(0, p:pending())
      assert.is_false(p:cancel(id))
      assert.is_false(p:cancel(12345))
      local t0 = now()
      assert.same({}, p:step(200))
      assert.is_true(now() - t0 >= 0.15)      -- nothing in flight: step just waits
      assert.equal(1, p:stats().cancelled)
    end)

    it("step(0) returns at once with a request in flight; step(t) returns when one finishes", function()
      local p <close> = core.http.poller()
      local slow = p:add{ method = "GET", url = srv.url .. "/sleep/1500" }
      local t0 = now()
      for _ = 1, 20 do assert.same({}, p:step(0)) end
      assert.is_true(now() - t0 < 1.2)          -- 20 steps, none waiting for the reply
      local fast = p:add{ method = "GET", url = srv.url .. "/" }
      local first
      repeat first = p:step(5000)[1] until first
      assert.equal(fast, first.id)              -- step(5000) returned with the fast one
      assert.is_true(p:cancel(slow))
    end)

    it("tells a host which sockets to watch and when to step, from libcurl's callbacks", function()
      local p <close> = core.http.poller()
      assert.is_nil(p:timeout())
      assert.same({}, p:sockets())
      local id = p:add{ method = "GET", url = srv.url .. "/sleep/200" }
      assert.equal(0, p:timeout())              -- libcurl wants to start at once
      local got, watched, t0 = nil, {}, now()
      local sleeper <close> = core.http.poller()  -- stands for the host's own wait
      while not got and now() - t0 < 20 do
        for _, c in ipairs(p:step(0)) do got = c end
        for _, sk in ipairs(p:sockets()) do
          assert.equal("integer", math.type(sk.fd))
          assert.equal("integer", math.type(sk.gen))
          assert.is_true(sk.read or sk.write)
          watched[sk.fd] = true
        end
        local t = p:timeout()
        assert.is_true(t == nil or (math.type(t) == "integer" and t >= 0))
        if not got then sleeper:step(5) end
      end
      assert.equal(id, got.id)
      assert.equal(200, got.response.status)
      assert.is_truthy(next(watched))
      assert.same({}, p:sockets())              -- nothing in flight: nothing to watch
    end)

    it("frees requests in flight when collected", function()
      do
        local p = core.http.poller()
        for i = 1, 5 do p:add{ method = "GET", url = srv.url .. "/sleep/500?i=" .. i } end
        p:step(10)
      end
      collectgarbage()
      collectgarbage()
    end)

    it("raises on use after close, and close is idempotent", function()
      local p = core.http.poller()
      p:add{ method = "GET", url = srv.url .. "/sleep/500" }
      p:close()
      p:close()
      assert.matches("closed", tostring(p))
      for _, call in ipairs{
        function() p:sockets() end,
        function() p:timeout() end,
        function() p:add{ method = "GET", url = srv.url } end,
        function() p:step(0) end,
        function() p:cancel(1) end,
        function() p:pending() end,
        function() p:stats() end,
      } do
        assert.has_error(call, "attempt to use a closed poller")
      end
    end)

    it("closes at the end of a <close> scope", function()
      local outer
      do
        local p <close> = core.http.poller()
        outer = p
      end
      assert.has_error(function() outer:pending() end, "attempt to use a closed poller")
    end)

    it("limits response bodies to max_response_bytes", function()
      local p <close> = core.http.poller{ max_response_bytes = 1000 }
      local c = run(p, { method = "GET", url = srv.url .. "/bytes/5000" })
      assert.equal("http", c.err.code)
      assert.matches("larger than 1000 bytes", c.err.message)
      assert.equal(200, run(p, { method = "GET", url = srv.url .. "/bytes/1000" }).response.status)
    end)
  end)

  describe("proxies", function()
    it("sends plain-HTTP requests through http_proxy", function()
      local out = child("http_proxy=" .. srv.url .. " no_proxy=", "http://emr-containers.example.test/v1/x")
      assert.equal("HTTP 200", out)
      local rec = srv:requests()[1]
      assert.equal("GET", rec.method)
      assert.equal("http://emr-containers.example.test/v1/x", rec.path)   -- absolute form: a proxy request
      assert.equal("emr-containers.example.test", header(rec.headers, "Host"))
    end)

    it("never sends loopback requests through a proxy", function()
      local out = child("http_proxy=http://127.0.0.1:1 no_proxy=", srv.url .. "/loopback")
      assert.equal("HTTP 200", out)
      assert.equal("/loopback", srv:requests()[1].path)
    end)

    it("bypasses the proxy for no_proxy hosts", function()
      local out = child("http_proxy=http://127.0.0.1:1 no_proxy=127.0.0.1", srv.url .. "/direct")
      assert.equal("HTTP 200", out)
      assert.equal("/direct", srv:requests()[1].path)
    end)
  end)

  describe("TLS", function()
    local dir, cert, key, tls

    setup(function()
      dir = os.tmpname()
      os.remove(dir)
      assert(os.execute("mkdir -m 700 " .. dir))
      cert, key = dir .. "/cert.pem", dir .. "/key.pem"
      local ok = os.execute(("openssl req -x509 -newkey rsa:2048 -nodes -keyout %s -out %s -days 2 "
        .. "-subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1,DNS:emr-containers.example.test "
        .. ">/dev/null 2>&1"):format(key, cert))
      if ok then tls = fake.start("fake_echo", { "--tls-cert", cert, "--tls-key", key }) end
    end)

    teardown(function()
      if tls then tls:stop() end
      os.execute("rm -rf " .. dir)
    end)

    it("verifies the server against ca_bundle (AWS_CA_BUNDLE)", function()
      if not tls then return pending("openssl could not make a test certificate") end
      local p <close> = core.http.poller()
      local c = run(p, { method = "POST", url = tls.url .. "/secure", body = "{}", ca_bundle = cert })
      assert.is_nil(c.err)
      assert.equal(200, c.response.status)
      assert.equal("/secure", cjson.decode(c.response.body).path)
      run(p, { method = "GET", url = tls.url .. "/again", ca_bundle = cert })
      assert.equal(1, p:stats().connections_opened)       -- TLS connections are kept alive too
    end)

    it("rejects a certificate it cannot verify", function()
      if not tls then return pending("openssl could not make a test certificate") end
      tls:reset()
      local p <close> = core.http.poller()
      local c = run(p, { method = "GET", url = tls.url .. "/" })       -- system CA store only
      assert.equal("tls", c.err.code)
      assert.is_false(c.err.retryable)
      assert.equal(0, #tls:requests())
    end)

    it("goes through an HTTPS proxy (CONNECT) and keeps request headers off the proxy", function()
      if not tls then return pending("openssl could not make a test certificate") end
      tls:reset()
      local proxy = fake.start("fake_echo", { "--connect-to", tls.port })
      local out = child("https_proxy=" .. proxy.url .. " no_proxy=",
        "https://emr-containers.example.test/v1/jobs",
        ("ca_bundle = %q, headers = { { 'Authorization', 'AWS4-HMAC-SHA256 sig' } }"):format(cert))
      local via = proxy:requests()
      proxy:stop()
      assert.equal("HTTP 200", out)
      assert.equal(1, #via)
      assert.equal("CONNECT", via[1].method)
      assert.equal("emr-containers.example.test:443", via[1].path)
      assert.is_nil(header(via[1].headers, "Authorization"))
      local rec = tls:requests()[1]
      assert.equal("/v1/jobs", rec.path)
      assert.equal("AWS4-HMAC-SHA256 sig", header(rec.headers, "Authorization"))
    end)

    it("rejects a certificate for another host name", function()
      if not tls then return pending("openssl could not make a test certificate") end
      local p <close> = core.http.poller()
      local c = run(p, { method = "GET", url = "https://localhost:" .. tls.port .. "/", ca_bundle = cert })
      assert.equal("tls", c.err.code)
    end)
  end)

  describe("misuse raises", function()
    local url = "http://127.0.0.1:1/"
    local bad_requests = {
      { "not a table", nil, "table expected" },
      { "missing method", { url = url }, "request.method is required" },
      { "method not a string", { method = 1, url = url }, "request.method must be a string" },
      { "method with a space", { method = "G T", url = url }, "bad method" },
      { "missing url", { method = "GET" }, "request.url is required" },
      { "relative url", { method = "GET", url = "/path" }, "bad url" },
      { "ftp url", { method = "GET", url = "ftp://127.0.0.1/" }, "scheme must be http or https" },
      { "headers not a table", { method = "GET", url = url, headers = "x" }, "request.headers must be" },
      { "header not a pair", { method = "GET", url = url, headers = { "X-A: 1" } },
        "request.headers%[1%] must be a {name, value} pair" },
      { "header value not a string", { method = "GET", url = url, headers = { { "X-A", 1 } } },
        "request.headers%[1%] must be a pair of strings" },
      { "header name with a colon", { method = "GET", url = url, headers = { { "X:A", "1" } } },
        "not a valid header name" },
      { "header name empty", { method = "GET", url = url, headers = { { "", "1" } } }, "empty name" },
      { "header value with CRLF", { method = "GET", url = url,
        headers = { { "X-A", "1\r\nX-Injected: 2" } } }, "contains CR, LF or NUL" },
      { "body not a string", { method = "POST", url = url, body = {} }, "request.body must be a string" },
      { "timeout_ms zero", { method = "GET", url = url, timeout_ms = 0 }, "timeout_ms must be an integer" },
      { "timeout_ms fractional", { method = "GET", url = url, timeout_ms = 1.5 }, "got 1.5" },
      { "timeout_ms a string", { method = "GET", url = url, timeout_ms = "10" }, "got string" },
      { "timeout_ms huge", { method = "GET", url = url, timeout_ms = 1e12 }, "between 1 and 86400000" },
      { "connect_timeout_ms negative", { method = "GET", url = url, connect_timeout_ms = -1 },
        "connect_timeout_ms must be an integer" },
      { "ca_bundle empty", { method = "GET", url = url, ca_bundle = "" }, "ca_bundle must be a file path" },
      { "ca_bundle not a string", { method = "GET", url = url, ca_bundle = true },
        "ca_bundle must be a string" },
      { "no_resend not a boolean", { method = "POST", url = url, body = "", no_resend = 1 },
        "no_resend must be a boolean" },
    }
    for _, case in ipairs(bad_requests) do
      it("p:add with " .. case[1], function()
        local p <close> = core.http.poller()
        local ok, err = pcall(p.add, p, case[2])
        assert.is_false(ok)
        assert.matches(case[3], err)
        assert.equal(0, p:pending())
      end)
    end

    it("p:step with a bad timeout", function()
      local p <close> = core.http.poller()
      assert.has_error(function() p:step(-1) end)
      assert.has_error(function() p:step(0.5) end)
      assert.has_error(function() p:step("x") end)
    end)

    it("core.http.poller with bad options", function()
      for _, opts in ipairs{ { max_connections = 0 }, { max_connections = 5000 },
                             { max_connections = "8" }, { max_response_bytes = 0 } } do
        assert.has_error(function() core.http.poller(opts) end)
      end
      assert.has_error(function() core.http.poller("x") end)
    end)

    it("methods called on something else than a poller", function()
      local p <close> = core.http.poller()
      assert.has_error(function() p.add({}, { method = "GET", url = url }) end)
      assert.has_error(function() p.step(nil) end)
      assert.has_error(function() p.sockets({}) end)
      assert.has_error(function() p.timeout(42) end)
    end)
  end)
end)
