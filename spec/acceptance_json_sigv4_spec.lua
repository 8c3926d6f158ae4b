-- Acceptance tests of emrflow.json and emrflow.sigv4, black-box from the public Lua API
-- (README "Usage in Lua") and doc/CONTRACTS.md "emrflow.json"; SigV4 vectors are read by path from
-- shared/conformance/sigv4 (AWS's official suite).
local json = require "emrflow.json"
local sigv4 = require "emrflow.sigv4"

local null = json.null

local function shared_dir()
  local root = os.getenv("EMRFLOW_SHARED") or "../shared"
  local f = io.open(root .. "/conformance/sigv4/README.md")
  if not f then return nil end
  f:close()
  return root
end

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

describe("acceptance: emrflow.json", function()
  describe("decode", function()
    it("maps JSON types to Lua: integers stay integers, fractions and exponents are floats", function()
      local v = json.decode('{"i":42,"neg":-7,"f":1.5,"e":1e2,"big":9223372036854775807,"t":true,"f2":false,'
        .. '"s":"x","n":null,"a":[1,"two",null],"o":{}}')
      assert.are.equal("integer", math.type(v.i))
      assert.are.equal(42, v.i)
      assert.are.equal("integer", math.type(v.neg))
      assert.are.equal("float", math.type(v.f))
      assert.are.equal("float", math.type(v.e))
      assert.are.equal(100.0, v.e)
      assert.are.equal(math.maxinteger, v.big)
      assert.are.equal(true, v.t)
      assert.are.equal(false, v.f2)
      assert.are.equal(null, v.n)
      assert.are.equal(3, #v.a)            -- null keeps its slot: arrays never have holes
      assert.are.equal(null, v.a[3])
      assert.is_true(json.is_array(v.a))
      assert.is_true(json.is_object(v.o))
    end)

    it("integers beyond int64 decode as floats (CONTRACTS)", function()
      local v = json.decode("9223372036854775808")
      assert.are.equal("float", math.type(v))
      assert.are.equal(2 ^ 63, v)
    end)

    it("marks empty arrays and objects so they encode back the same", function()
      local v = json.decode('{"a":[],"o":{}}')
      assert.is_true(json.is_array(v.a))
      assert.is_true(json.is_object(v.o))
      assert.are.equal('{"a":[],"o":{}}', json.encode(v))
    end)

    it("decodes strings: escapes, \\u escapes and surrogate pairs to UTF-8", function()
      assert.are.equal('a"b\\c/d\b\f\n\r\t', json.decode([["a\"b\\c\/d\b\f\n\r\t"]]))
      assert.are.equal("é", json.decode([["\u00e9"]]))
      assert.are.equal("\u{1F600}", json.decode([["\ud83d\ude00"]]))
      assert.are.equal("a\0b", json.decode([["a\u0000b"]]))
    end)

    it("records key order of objects", function()
      local v = json.decode('{"z":1,"a":2,"m":3}')
      assert.are.same({ "z", "a", "m" }, json.keys(v))
      assert.are.equal('{"z":1,"a":2,"m":3}', json.encode(v))
    end)

    it("accepts whitespace around values", function()
      assert.are.same({ a = { 1, 2 } }, json.decode(' \t\n{ "a" : [ 1 , 2 ] } \r\n'))
    end)

    -- the documented contract: "raises on bad input, message names the byte offset"
    local bad = {
      { "empty text", "", nil },
      { "trailing garbage", "{} x", 4 },
      { "a trailing comma", "[1,]", 4 },
      { "a missing colon", '{"a" 1}', 6 },
      { "single quotes", "{'a':1}", 2 },
      { "NaN", "NaN", 1 },
      { "a leading zero", "01", nil },
      { "an unterminated string", '"abc', nil },
      { "a raw control character in a string", '"a\nb"', 3 },
      { "invalid UTF-8", '"\255"', 2 },
      { "a lone surrogate", [["\ud800"]], nil },
      { "a bad escape", [["\x41"]], nil },
      { "an unterminated array", "[1, 2", nil },
      { "a bare word", "hello", 1 },
    }
    for _, c in ipairs(bad) do
      it("raises on " .. c[1] .. ", naming the byte offset", function()
        local ok, err = pcall(json.decode, c[2])
        assert.is_false(ok)
        err = tostring(err)
        local at = err:match("byte (%d+)")
        assert.truthy(at, "no byte offset in: " .. err)
        if c[3] then assert.are.equal(c[3], tonumber(at), err) end
      end)
    end

    it("limits nesting depth (default 1000, option max_depth)", function()
      local deep = string.rep("[", 1001) .. string.rep("]", 1001)
      assert.has_error(function() json.decode(deep) end)
      assert.has_no.errors(function() json.decode(string.rep("[", 999) .. string.rep("]", 999)) end)
      assert.has_error(function() json.decode("[[[1]]]", { max_depth = 2 }) end)
      assert.are.same({ { { 1 } } }, json.decode("[[[1]]]", { max_depth = 3 }))
    end)

    it("raises a clear error for a non-string argument (caller misuse)", function()
      assert.has_error(function() json.decode(nil) end)
      assert.has_error(function() json.decode({}) end)
    end)
  end)

  describe("encode", function()
    it("produces compact JSON", function()
      assert.are.equal('{"a":[1,2,{"b":null}]}',
        json.encode(json.decode('{ "a" : [ 1, 2, { "b" : null } ] }')))
    end)

    it("encodes unmarked tables: empty -> {}, sequence -> array, string keys -> object in sorted order",
      function()
      assert.are.equal("{}", json.encode({}))
      assert.are.equal("[1,2,3]", json.encode({ 1, 2, 3 }))
      assert.are.equal('{"a":2,"m":3,"z":1}', json.encode({ z = 1, a = 2, m = 3 }))
      assert.are.equal("[]", json.encode(json.array {}))
      assert.are.equal("{}", json.encode(json.object {}))
    end)

    it("keeps json.set insertion order", function()
      local o = json.object {}
      json.set(o, "b", 1)
      json.set(o, "a", 2)
      json.set(o, "c", 3)
      json.set(o, "a", nil)
      assert.are.same({ "b", "c" }, json.keys(o))
      assert.are.equal('{"b":1,"c":3}', json.encode(o))
    end)

    it("encodes numbers: integers exactly, floats shortest round-trip, integral floats keep .0", function()
      assert.are.equal("-9223372036854775808", json.encode(math.mininteger))
      assert.are.equal("0.1", json.encode(0.1))
      assert.are.equal("2.0", json.encode(2.0))
      assert.are.equal(1e300, json.decode(json.encode(1e300)))
      assert.are.equal(1 / 3, json.decode(json.encode(1 / 3)))
      for _, x in ipairs { 5e-324, 1.7976931348623157e308, -0.5, 123456.789 } do
        assert.are.equal(x, json.decode(json.encode(x)))
      end
    end)

    it("escapes strings so they decode back unchanged", function()
      local s = 'q"b\\s/\n\r\t\1\31\127é\u{1F600}'
      local text = json.encode(s)
      assert.is_nil(text:find("[%z\1-\31]"), "no raw control characters")
      assert.are.equal(s, json.decode(text))
    end)

    it("encodes json.null as null", function()
      assert.are.equal("null", json.encode(null))
      assert.are.equal("[null]", json.encode({ null }))
    end)

    local unencodable = {
      { "NaN", 0 / 0 },
      { "infinity", math.huge },
      { "a function", { f = print } },
      { "mixed keys", { 1, a = 2 } },
      { "a sparse array", { 1, nil, 3 } },
      { "a boolean key", { [true] = 1 } },
      { "invalid UTF-8", "\255" },
      { "a userdata other than null", io.stdout },
    }
    for _, c in ipairs(unencodable) do
      it("raises on " .. c[1], function()
        local ok, err = pcall(json.encode, c[2])
        assert.is_false(ok)
        assert.truthy(tostring(err):find("emrflow.json", 1, true), tostring(err))
      end)
    end

    it("raises on a cycle instead of looping", function()
      local t = {}
      t.self = t
      assert.has_error(function() json.encode(t) end)
    end)

    it("names where the bad value is", function()
      local ok, err = pcall(json.encode, { a = { 1, 2, { b = print } } })
      assert.is_false(ok)
      assert.truthy(tostring(err):find("$.a[2].b", 1, true), tostring(err))
    end)
  end)

  describe("helpers", function()
    it("json.array / json.object mark tables and return them; is_array/is_object test the mark", function()
      local a, o = {}, {}
      assert.are.equal(a, json.array(a))
      assert.are.equal(o, json.object(o))
      assert.is_true(json.is_array(a))
      assert.is_false(json.is_object(a))
      assert.is_true(json.is_object(o))
      assert.is_false(json.is_array(o))
      assert.is_false(json.is_array({}))
      assert.is_false(json.is_array("x"))
    end)

    it("json.copy is deep and keeps marks and key order", function()
      local v = json.decode('{"z":[],"a":{"y":1,"b":[1,{}]}}')
      local c = json.copy(v)
      assert.are_not.equal(v, c)
      assert.are_not.equal(v.a, c.a)
      assert.are.equal(json.encode(v), json.encode(c))
      c.a.y = 2
      assert.are.equal(1, v.a.y)
    end)

    it("round-trips a mixed document", function()
      local text = '{"id":"x","n":[1,2.5,-3e-7,null,true],"nested":{"deep":[[[]]],"empty":{}},"u":"\\u2603"}'
      local v = json.decode(text)
      assert.are.same(v, json.decode(json.encode(v)))
    end)
  end)
end)

describe("acceptance: emrflow.sigv4", function()
  local SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
  local TOKEN = "SESSIONTOKEN-sekrit-6e86291e8372ff2a"
  local function req(over)
    local r = {
      method = "GET", url = "https://example.amazonaws.com/", headers = {},
      region = "us-east-1", service = "service", time = 1440938160,
      credentials = { access_key_id = "AKIDEXAMPLE", secret_access_key = SECRET },
    }
    for k, v in pairs(over or {}) do r[k] = v end
    return r
  end
  local function header(s, name)
    for _, h in ipairs(s.headers) do
      if h[1]:lower() == name:lower() then return h[2] end
    end
    return nil
  end

  it("signs AWS's get-vanilla vector (shared/conformance/sigv4/get-vanilla)", function()
    local root = shared_dir()
    if not root then pending("shared/conformance not found (set EMRFLOW_SHARED)") return end
    local dir = root .. "/conformance/sigv4/get-vanilla/"
    local s = sigv4.sign(req { headers = { { "Host", "example.amazonaws.com" } } })
    assert.are.equal((read(dir .. "header-signature.txt"):gsub("%s+$", "")), s.signature)
    assert.are.equal((read(dir .. "header-canonical-request.txt"):gsub("%s+$", "")), s.canonical_request)
    assert.are.equal((read(dir .. "header-string-to-sign.txt"):gsub("%s+$", "")), s.string_to_sign)
    assert.are.equal("20150830T123600Z", s.amz_date)
    assert.are.equal(s.authorization, header(s, "Authorization"))
    assert.are.equal("20150830T123600Z", header(s, "X-Amz-Date"))
  end)

  it("adds and signs X-Amz-Security-Token for temporary credentials (get-vanilla-with-session-token)",
    function()
    local root = shared_dir()
    if not root then pending("shared/conformance not found (set EMRFLOW_SHARED)") return end
    local dir = root .. "/conformance/sigv4/get-vanilla-with-session-token/"
    local ctx = json.decode(read(dir .. "context.json"))
    local s = sigv4.sign(req { headers = { { "Host", "example.amazonaws.com" } },
      credentials = { access_key_id = ctx.credentials.access_key_id,
        secret_access_key = ctx.credentials.secret_access_key, session_token = ctx.credentials.token } })
    assert.are.equal((read(dir .. "header-signature.txt"):gsub("%s+$", "")), s.signature)
    assert.are.equal(ctx.credentials.token, header(s, "X-Amz-Security-Token"))
    assert.truthy(s.authorization:find("SignedHeaders=host;x-amz-date;x-amz-security-token", 1, true))
  end)

  it("omit_session_token sends the token unsigned", function()
    local s = sigv4.sign(req { omit_session_token = true,
      credentials = { access_key_id = "AKIDEXAMPLE", secret_access_key = SECRET, session_token = TOKEN } })
    assert.are.equal(TOKEN, header(s, "X-Amz-Security-Token"))
    assert.is_nil(s.authorization:find("x-amz-security-token", 1, true))
  end)

  it("sign_body adds X-Amz-Content-Sha256; unsigned_payload uses UNSIGNED-PAYLOAD", function()
    local body = '{"a":1}'
    local s = sigv4.sign(req { method = "POST", body = body, sign_body = true })
    local hash = header(s, "X-Amz-Content-Sha256")
    assert.truthy(hash and hash:match("^%x+$") and #hash == 64)
    assert.are.equal(sigv4.payload_hash(body), hash)
    assert.truthy(s.authorization:find("x-amz-content-sha256", 1, true))
    local u = sigv4.sign(req { method = "POST", body = body, unsigned_payload = true })
    assert.are.equal("UNSIGNED-PAYLOAD", u.canonical_request:match("([^\n]*)$"))
  end)

  it("keeps the caller's headers, duplicates included, and is deterministic", function()
    local hs = { { "X-A", "1" }, { "X-A", "2" }, { "Content-Type", "application/json" } }
    local a = sigv4.sign(req { headers = hs })
    local b = sigv4.sign(req { headers = hs })
    assert.are.equal(a.signature, b.signature)
    assert.truthy(a.canonical_request:find("x-a:1,2\n", 1, true))
    local seen = 0
    for _, h in ipairs(a.headers) do if h[1] == "X-A" then seen = seen + 1 end end
    assert.are.equal(2, seen)
    local c = sigv4.sign(req { headers = hs, time = 1440938161 })
    assert.are_not.equal(a.signature, c.signature)
  end)

  -- bad input raises, naming the field; never a crash
  local bad = {
    { "a non-table request", "x", "request" },
    { "no method", req { method = false }, "method" },
    { "a non-string method", req { method = 5 }, "method" },
    { "no url", req { url = false }, "url" },
    { "a relative url", req { url = "/path" }, "url" },
    { "a non-http url", req { url = "ftp://example.com/" }, "url" },
    { "no region", req { region = false }, "region" },
    { "no service", req { service = false }, "service" },
    { "no credentials", req { credentials = false }, "credentials" },
    { "no access key id", req { credentials = { secret_access_key = SECRET } }, "access_key_id" },
    { "no secret key", req { credentials = { access_key_id = "AKID" } }, "secret_access_key" },
    { "a non-string secret key", req { credentials = { access_key_id = "AKID", secret_access_key = 5 } },
      "secret_access_key" },
    { "a non-string session token", req { credentials = { access_key_id = "AKID", secret_access_key = SECRET,
      session_token = 7 } }, "session_token" },
    { "a non-string body", req { body = 5 }, "body" },
    { "a header pair without a value", req { headers = { { "X-A" } } }, "headers" },
    { "a header value with CR LF", req { headers = { { "X-A", "a\r\nInjected: 1" } } }, "headers" },
    { "a non-number time", req { time = "now" }, "time" },
    { "a negative time", req { time = -1 }, "time" },
  }
  for _, c in ipairs(bad) do
    it("raises on " .. c[1] .. ", naming the field, without any secret", function()
      local r = c[2]
      if type(r) == "table" then
        for k, v in pairs(r) do if v == false then r[k] = nil end end
        if r.credentials then r.credentials.session_token = r.credentials.session_token or nil end
      end
      local ok, err = pcall(sigv4.sign, r)
      assert.is_false(ok)
      err = tostring(err)
      assert.truthy(err:find(c[3], 1, true), "error should name " .. c[3] .. ": " .. err)
      assert.is_nil(err:find(SECRET, 1, true))
      assert.is_nil(err:find("wJalrXUtnFEMI", 1, true))
    end)
  end

  it("never puts the secret key or session token in errors about other fields", function()
    local creds = { access_key_id = "AKIDEXAMPLE", secret_access_key = SECRET, session_token = TOKEN }
    for _, over in ipairs { { url = "nope" }, { headers = { { "X", "a\nb" } } }, { time = -5 },
      { body = {} } } do
      over.credentials = creds
      local ok, err = pcall(sigv4.sign, req(over))
      assert.is_false(ok)
      assert.is_nil(tostring(err):find(SECRET, 1, true))
      assert.is_nil(tostring(err):find(TOKEN, 1, true))
    end
  end)

  it("rejects headers given as a map instead of ordered pairs (headers are ordered pairs)", function()
      local ok, err = pcall(sigv4.sign, req { headers = { ["Content-Type"] = "application/json" } })
      assert.is_false(ok)
      assert.truthy(tostring(err):find("headers", 1, true))
  end)
end)
