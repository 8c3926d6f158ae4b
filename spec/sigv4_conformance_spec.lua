-- emrflow.sigv4 against the recorded SigV4 vectors in ../shared/conformance:
-- sigv4/ (AWS's suite, aws-c-auth copy, 38 cases), sigv4-legacy/ (3 cases of
-- botocore's older copy) and sigv4-emr-containers/ (6 requests signed by
-- botocore's client). Canonical request, string to sign, signature,
-- Authorization and the signed headers must match byte for byte.
local sigv4 = require "emrflow.sigv4"
local cjson = require "cjson"

-- $EMRFLOW_SHARED, else ../shared next to the repo root (this file is spec/<name>).
local function shared_dir()
  local env = os.getenv("EMRFLOW_SHARED")
  if env and env ~= "" then return env end
  local here = debug.getinfo(1, "S").source:match("^@(.*)$") or ""
  local root = here:match("^(.*)/spec/[^/]+$") or (here:match("^spec/[^/]+$") and ".") or "."
  return root .. "/../shared"
end

local function read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

local function list_dirs(dir)
  local p = io.popen('ls -1 "' .. dir .. '" 2>/dev/null')
  local out = {}
  for name in p:lines() do
    if read(dir .. "/" .. name .. "/request.txt") or read(dir .. "/" .. name .. "/request.json")
      or read(dir .. "/" .. name .. "/" .. name .. ".req") then
      out[#out + 1] = name
    end
  end
  p:close()
  table.sort(out)
  return out
end

-- Unix seconds of an ISO 8601 UTC time (2015-08-30T12:36:00Z or 20150830T123600Z).
local function unix_time(ts)
  local y, mo, d, h, mi, s = ts:match("^(%d%d%d%d)-?(%d%d)-?(%d%d)T(%d%d):?(%d%d):?(%d%d)Z$")
  assert(y, "bad timestamp " .. ts)
  y, mo, d = tonumber(y), tonumber(mo), tonumber(d)
  if mo <= 2 then y = y - 1 end
  local era = y // 400
  local yoe = y - era * 400
  local mp = (mo + 9) % 12
  local doy = (153 * mp + 2) // 5 + d - 1
  local doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
  local days = era * 146097 + doe - 719468
  return days * 86400 + tonumber(h) * 3600 + tonumber(mi) * 60 + tonumber(s)
end

-- request.txt: "METHOD target HTTP/1.1", "Name:value" lines (a line starting
-- with white space continues the previous value), a blank line, the body.
local function parse_http(text)
  local head, body = text:match("^(.-)\n\n(.*)$")
  if not head then head, body = text:gsub("\n$", ""), "" end
  local lines = {}
  for line in (head .. "\n"):gmatch("(.-)\n") do lines[#lines + 1] = line end
  local method, target = lines[1]:match("^(%S+) (.*) HTTP/1%.1$")
  local headers = {}
  for i = 2, #lines do
    local line = lines[i]
    if line:match("^[ \t]") then
      local last = headers[#headers]
      last[2] = last[2] .. "\n" .. line
    else
      local name, value = line:match("^([^:]+):(.*)$")
      headers[#headers + 1] = { name, value }
    end
  end
  return { method = method, target = target, headers = headers, body = body }
end

local function header_host(headers)
  for _, h in ipairs(headers) do
    if h[1]:lower() == "host" then return h[2] end
  end
end

-- "name:value" lines, names lower-cased, values trimmed, sorted.
local function header_set(headers)
  local out = {}
  for _, h in ipairs(headers) do
    out[#out + 1] = h[1]:lower() .. ":" .. h[2]:gsub("^%s+", ""):gsub("%s+$", "")
  end
  table.sort(out)
  return out
end

local root = shared_dir() .. "/conformance"
local present = read(root .. "/sigv4/README.md") ~= nil

describe("emrflow.sigv4 conformance", function()
  if not present then
    it("needs the shared conformance vectors", function()
      pending("no " .. root .. "/sigv4 (set EMRFLOW_SHARED); conformance cases skipped")
    end)
    return
  end

  describe("AWS SigV4 test suite (sigv4/)", function()
    local dir = root .. "/sigv4"
    local cases = list_dirs(dir)

    it("has all 38 cases", function()
      assert.are.equal(38, #cases)
    end)

    for _, name in ipairs(cases) do
      it(name, function()
        local base = dir .. "/" .. name .. "/"
        local ctx = cjson.decode(read(base .. "context.json"))
        local req = parse_http(read(base .. "request.txt"))
        local s = sigv4.sign{
          method = req.method,
          url = "https://" .. header_host(req.headers) .. req.target,
          headers = req.headers,
          body = req.body,
          region = ctx.region,
          service = ctx.service,
          credentials = {
            access_key_id = ctx.credentials.access_key_id,
            secret_access_key = ctx.credentials.secret_access_key,
            session_token = ctx.credentials.token,
          },
          time = unix_time(ctx.timestamp),
          normalize_path = ctx.normalize,
          double_encode = true,
          sign_body = ctx.sign_body,
          omit_session_token = ctx.omit_session_token == true,
        }
        assert.are.equal(read(base .. "header-canonical-request.txt"), s.canonical_request)
        assert.are.equal(read(base .. "header-string-to-sign.txt"), s.string_to_sign)
        assert.are.equal(read(base .. "header-signature.txt"), s.signature)
        local signed = parse_http(read(base .. "header-signed-request.txt"))
        assert.are.same(header_set(signed.headers), header_set(s.headers))
        assert.are.equal("20150830T123600Z", s.amz_date)
      end)
    end
  end)

  describe("legacy suite cases (sigv4-legacy/)", function()
    local dir = root .. "/sigv4-legacy"
    local cases = list_dirs(dir)

    it("has all 3 cases", function()
      assert.are.equal(3, #cases)
    end)

    for _, name in ipairs(cases) do
      it(name, function()
        local base = dir .. "/" .. name .. "/" .. name
        local req = parse_http(read(base .. ".req"))
        local s = sigv4.sign{
          method = req.method,
          url = "https://" .. header_host(req.headers) .. req.target,
          headers = req.headers,   -- carries X-Amz-Date: the signer replaces it
          body = req.body,
          region = "us-east-1",
          service = "service",
          credentials = { access_key_id = "AKIDEXAMPLE",
                          secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY" },
          time = unix_time("2015-08-30T12:36:00Z"),
        }
        assert.are.equal(read(base .. ".creq"), s.canonical_request)
        assert.are.equal(read(base .. ".sts"), s.string_to_sign)
        assert.are.equal(read(base .. ".authz"), s.authorization)
        local signed = parse_http(read(base .. ".sreq"))
        assert.are.same(header_set(signed.headers), header_set(s.headers))
      end)
    end
  end)

  describe("emr-containers requests signed by botocore (sigv4-emr-containers/)", function()
    local dir = root .. "/sigv4-emr-containers"
    local cases = list_dirs(dir)
    -- botocore's HTTP layer adds these after signing
    local after_signing = { ["amz-sdk-invocation-id"] = true, ["amz-sdk-request"] = true,
                            ["content-length"] = true }

    it("has all 6 cases", function()
      assert.are.equal(6, #cases)
    end)

    for _, name in ipairs(cases) do
      it(name, function()
        local base = dir .. "/" .. name .. "/"
        local r = cjson.decode(read(base .. "request.json"))
        local s = sigv4.sign{
          method = r.method,
          url = r.url,
          headers = r.headers,
          body = r.body,
          region = r.region,
          service = r.service,
          credentials = { access_key_id = r.access_key, secret_access_key = r.secret_key,
                          session_token = r.session_token },
          time = unix_time(r.timestamp),
        }
        assert.are.equal(read(base .. "canonical-request.txt"), s.canonical_request)
        assert.are.equal(read(base .. "string-to-sign.txt"), s.string_to_sign)
        assert.are.equal(read(base .. "signature.txt"), s.signature)
        assert.are.equal(read(base .. "authorization.txt"), s.authorization)
        local sent = {}
        for _, h in ipairs(cjson.decode(read(base .. "sent-headers.json"))) do
          if not after_signing[h[1]:lower()] then sent[#sent + 1] = h end
        end
        assert.are.same(sent, s.headers)   -- same headers, same order
      end)
    end
  end)
end)
