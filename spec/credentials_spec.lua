-- emrflow.credentials: every provider, the chain's order, caching, refresh and single flight.
-- Part 1 drives the providers through an injected `http` function (a scripted loopback
-- stand-in, so each case controls exactly what the "network" answers); part 2 runs the same
-- providers over real HTTP against spec/support/fake_creds.py (STS with SigV4 checked by
-- botocore, IMDSv2, container credentials).
local creds = require "emrflow.credentials"
local scheduler = require "emrflow.scheduler"
local json = require "emrflow.json"

local SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
local TOKEN = "IQoJb3JpZ2luX2VjEXAMPLESESSIONTOKEN"

local tmpdir
local function write(name, text)
  local path = tmpdir .. "/" .. name
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
  return path
end

-- An environment with no files and IMDS disabled, plus t.
local function env(t)
  local e = {
    AWS_CONFIG_FILE = tmpdir .. "/none-config", AWS_SHARED_CREDENTIALS_FILE = tmpdir .. "/none-creds",
    AWS_EC2_METADATA_DISABLED = "true",
  }
  for k, v in pairs(t or {}) do e[k] = v end
  return e
end

local function iso(t) return os.date("!%Y-%m-%dT%H:%M:%SZ", t) end

-- Scripted HTTP: routes "METHOD url" (exact, or a prefix ending in "*") to a function(req)
-- returning a response table, or a table used as is. Records every request.
local function fake_http(routes)
  local log = {}
  local http = function(req)
    log[#log + 1] = req
    local key = req.method .. " " .. req.url
    local r = routes[key]
    if not r then
      for k, v in pairs(routes) do
        if k:sub(-1) == "*" and key:sub(1, #k - 1) == k:sub(1, -2) then r = v end
      end
    end
    if r == nil then return nil, { code = "connect", message = "connection refused", retryable = true } end
    if type(r) == "function" then return r(req) end
    return r
  end
  return http, log
end

local function header(req, name)
  for _, h in ipairs(req.headers or {}) do
    if h[1]:lower() == name:lower() then return h[2] end
  end
end

local function form(body)
  local t = {}
  for k, v in body:gmatch("([^&=]+)=([^&]*)") do
    t[k] = v:gsub("%%(%x%x)", function(x) return string.char(tonumber(x, 16)) end)
  end
  return t
end

local seq = 0
local function sts_ok(action, exp, ak)
  seq = seq + 1
  ak = ak or string.format("ASIASTUB%08d", seq)
  return { status = 200, headers = { { "Content-Type", "text/xml" } }, body = string.format([[
<%sResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <%sResult>
    <Credentials>
      <AccessKeyId>%s</AccessKeyId>
      <SecretAccessKey>stub/secret+%d</SecretAccessKey>
      <SessionToken>stub-token-%d</SessionToken>
      <Expiration>%s</Expiration>
    </Credentials>
    <AssumedRoleUser><Arn>arn:aws:sts::123456789012:assumed-role/r/s</Arn></AssumedRoleUser>
  </%sResult>
</%sResponse>]], action, action, ak, seq, seq, iso(exp), action, action) }
end

local function sts_error(status, code, msg)
  return { status = status, headers = {}, body = string.format(
    "<ErrorResponse><Error><Type>Sender</Type><Code>%s</Code><Message>%s</Message></Error>" ..
    "<RequestId>rid-1</RequestId></ErrorResponse>", code, msg) }
end

local function creds_json(exp, n)
  return { status = 200, headers = {}, body = json.encode {
    Code = "Success", AccessKeyId = "ASIAJSON" .. (n or 1), SecretAccessKey = "json/secret+" .. (n or 1),
    Token = "json-token-" .. (n or 1), Expiration = iso(exp) } }
end

-- Every string reachable from v (tables walked, tostring applied) for the no-secret checks.
local function all_text(v, seen, out)
  seen, out = seen or {}, out or {}
  out[#out + 1] = tostring(v)
  if type(v) == "table" and not seen[v] then
    seen[v] = true
    for k, x in pairs(v) do
      all_text(k, seen, out)
      all_text(x, seen, out)
    end
  end
  return table.concat(out, "\n")
end

local function assert_no_secret(v, secrets)
  local text = all_text(v)
  for _, s in ipairs(secrets) do
    assert.falsy(text:find(s, 1, true), "secret leaked: " .. text)
  end
end

setup(function()
  tmpdir = os.tmpname()
  os.remove(tmpdir)
  assert(os.execute("mkdir -p '" .. tmpdir .. "'"))
end)

teardown(function()
  os.execute("rm -rf '" .. tmpdir .. "'")
end)

describe("emrflow.credentials objects", function()
  it("read like a table but never show secrets in tostring, pairs or JSON", function()
    local c = creds.new_credentials { access_key_id = "AKIDEXAMPLE123", secret_access_key = SECRET,
                                      session_token = TOKEN, expiration = 1700000000, source = "test" }
    assert.equal("AKIDEXAMPLE123", c.access_key_id)
    assert.equal(SECRET, c.secret_access_key)
    assert.equal(TOKEN, c.session_token)
    assert.equal(1700000000, c.expiration)
    assert.equal("emrflow.Credentials{access_key_id=AKID****E123, secret_access_key=<redacted>, " ..
      "session_token=<redacted>, expiration=2023-11-14T22:13:20Z, source=test}", tostring(c))
    assert_no_secret(c, { SECRET, TOKEN })
    assert_no_secret(json.encode(c), { SECRET, TOKEN })
    assert.has_error(function() c.secret_access_key = "x" end,
      "emrflow.Credentials is read-only (tried to set 'secret_access_key')")
  end)

  it("parse ISO 8601 times the way STS, IMDS and ECS write them", function()
    local cases = {
      { "1970-01-01T00:00:00Z", 0 },
      { "2011-07-15T23:28:33.359Z", 1310772513 },
      { "2026-12-01T21:17:54Z", 1796159874 },
      { "2024-02-29T12:00:00+02:00", 1709200800 },
      { "2024-02-29T12:00:00-0130", 1709213400 },
      { "2024-02-29 12:00:00", 1709208000 },
      { "2024-13-01T00:00:00Z", nil },
      { "yesterday", nil },
      { "2024-01-01T00:00:00 garbage", nil },
    }
    for _, c in ipairs(cases) do
      assert.equal(c[2], creds.parse_time(c[1]), c[1])
    end
  end)
end)

describe("emrflow.credentials providers", function()
  describe("static", function()
    it("returns the explicit credentials, cached, never expiring", function()
      local p = creds.static { access_key_id = "AKIDSTATIC", secret_access_key = SECRET }
      local c = assert(p:get())
      assert.equal("AKIDSTATIC", c.access_key_id)
      assert.equal(SECRET, c.secret_access_key)
      assert.is_nil(c.session_token)
      assert.is_nil(c.expiration)
      assert.equal(c, p:get())
    end)

    it("raises on misuse, naming the field and never the secret", function()
      local ok, err = pcall(creds.static, { access_key_id = "AKID" })
      assert.is_false(ok)
      assert.truthy(err:find("emrflow.credentials.static: credentials.secret_access_key must be a " ..
        "non-empty string",
        1, true), err)
      ok, err = pcall(creds.static, { access_key_id = "AKID", secret_access_key = SECRET, session_token = 5 })
      assert.is_false(ok)
      assert.falsy(err:find(SECRET, 1, true))
      assert.has_error(function() creds.static("AKID") end,
        "emrflow.credentials.static: credentials must be a table, got string")
    end)
  end)

  describe("environment", function()
    it("reads the key, secret and session token", function()
      local c = assert(creds.env { env = env { AWS_ACCESS_KEY_ID = "AKIDENV", AWS_SECRET_ACCESS_KEY = SECRET,
                                               AWS_SESSION_TOKEN = TOKEN } }:get())
      assert.equal("AKIDENV", c.access_key_id)
      assert.equal(SECRET, c.secret_access_key)
      assert.equal(TOKEN, c.session_token)
      assert.equal("environment", c.source)
    end)

    it("reads the legacy AWS_SECURITY_TOKEN and AWS_CREDENTIAL_EXPIRATION", function()
      local c = assert(creds.env { env = env { AWS_ACCESS_KEY_ID = "A", AWS_SECRET_ACCESS_KEY = SECRET,
        AWS_SECURITY_TOKEN = TOKEN, AWS_CREDENTIAL_EXPIRATION = "2099-01-01T00:00:00Z" } }:get())
      assert.equal(TOKEN, c.session_token)
      assert.equal(4070908800, c.expiration)
    end)

    it("fails on half a key pair, saying which half is missing", function()
      local _, err = creds.env { env = env { AWS_ACCESS_KEY_ID = "AKIDENV" } }:get()
      assert.equal("credentials", err.code)
      assert.equal("environment (AWS_ACCESS_KEY_ID): failed (AWS_ACCESS_KEY_ID is set but " ..
        "AWS_SECRET_ACCESS_KEY is not)", err.message)
      _, err = creds.env { env = env { AWS_SECRET_ACCESS_KEY = SECRET } }:get()
      assert.truthy(err.message:find("AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not", 1, true))
      assert_no_secret(err, { SECRET })
    end)
  end)

  describe("shared files", function()
    local function files(config_text, creds_text)
      seq = seq + 1
      return {
        AWS_CONFIG_FILE = config_text and write("config" .. seq, config_text) or (tmpdir .. "/none"),
        AWS_SHARED_CREDENTIALS_FILE = creds_text and write("creds" .. seq, creds_text) or (tmpdir .. "/none"),
        AWS_EC2_METADATA_DISABLED = "true",
      }
    end

    it("reads static keys of [default] from the credentials file", function()
      local e = files(nil, "[default]\naws_access_key_id = AKIDFILE\naws_secret_access_key = " .. SECRET ..
        "\naws_session_token = " .. TOKEN .. "\n")
      local c = assert(creds.profile { env = e }:get())
      assert.equal("AKIDFILE", c.access_key_id)
      assert.equal(SECRET, c.secret_access_key)
      assert.equal(TOKEN, c.session_token)
      assert.equal("profile:default", c.source)
    end)

    it("parses keys case-insensitively and keeps '=', ':', '/' and '+' inside values", function()
      local e = files(nil, "# team keys\n[ default ]\n; rotated monthly\nAWS_Access_Key_ID=AKIDUPPER\n" ..
        "aws_secret_access_key =  abc/def+ghi:jk==  \r\n")
      local c = assert(creds.profile { env = e }:get())
      assert.equal("AKIDUPPER", c.access_key_id)
      assert.equal("abc/def+ghi:jk==", c.secret_access_key)
    end)

    it("reports an unparsable credentials file with its path and line, not its text", function()
      local e = files(nil, "[default]\naws_access_key_id = AKID\n" .. SECRET .. "\n")
      local _, err = creds.chain { env = e }:get()
      assert.truthy(err.message:find("cannot use the AWS shared credentials file " ..
        "(AWS_SHARED_CREDENTIALS_FILE): " ..
        e.AWS_SHARED_CREDENTIALS_FILE .. ":3: expected '[section]' or 'key = value'", 1, true), err.message)
      assert_no_secret(err, { SECRET })
    end)

    it("finds [x] in the credentials file and [profile x] in the config file; the credentials file wins",
      function()
      local e = files("[profile dev]\naws_access_key_id = AKIDCONFIG\naws_secret_access_key = cfgsecret\n" ..
                      "[profile cfgonly]\naws_access_key_id = AKIDCFGONLY\naws_secret_access_key = s2\n",
                      "[dev]\naws_access_key_id = AKIDCREDS\naws_secret_access_key = credsecret\n")
      e.AWS_PROFILE = "dev"
      assert.equal("AKIDCREDS", assert(creds.profile { env = e }:get()).access_key_id)
      assert.equal("AKIDCFGONLY", assert(creds.profile { env = e, profile = "cfgonly" }:get()).access_key_id)
      e.AWS_PROFILE = nil
      -- [dev] in the config file (no "profile " prefix) is not a profile
      local e2 = files("[dev]\naws_access_key_id = AKIDX\naws_secret_access_key = s\n")
      local _, err = creds.profile { env = e2, profile = "dev" }:get()
      assert.truthy(err.message:find("profile 'dev' (from the profile option) is not in", 1, true),
        err.message)
    end)

    local failing = {
      { "half a key pair", "[default]\naws_access_key_id = AKIDHALF\n",
        "profile 'default' (" },
      { "a credential_process printing something else than JSON",
        "[default]\ncredential_process = /bin/echo " .. SECRET .. "\n",
        "profile 'default': credential_process did not print a JSON object" },
      { "a credential_process that exits non-zero", "[default]\ncredential_process = sh -c 'echo " ..
        SECRET ..
        "; exit 3'\n", "profile 'default': credential_process exited with status 3" },
      { "a credential_process printing another Version",
        "[default]\ncredential_process = printf '{\"Version\":2}'\n",
        "profile 'default': credential_process printed Version 2, expected 1" },
      { "SSO", "[default]\nsso_session = corp\nsso_account_id = 1\n",
        "profile 'default' uses IAM Identity Center (SSO), which emrflow does not support" },
      { "role_arn without a source", "[default]\nrole_arn = arn:aws:iam::1:role/r\n",
        "profile 'default' has role_arn but neither source_profile nor credential_source" },
      { "both source_profile and credential_source",
        "[default]\nrole_arn = arn:aws:iam::1:role/r\nsource_profile = a\ncredential_source = Environment\n",
        "profile 'default' has both source_profile and credential_source" },
      { "an unknown credential_source",
        "[default]\nrole_arn = arn:aws:iam::1:role/r\ncredential_source = Magic\n",
        "credential_source 'Magic' is not one of Environment, Ec2InstanceMetadata, EcsContainer" },
      { "a source_profile cycle",
        "[profile a]\nrole_arn = arn:aws:iam::1:role/a\nsource_profile = b\n" ..
        "[profile b]\nrole_arn = arn:aws:iam::1:role/b\nsource_profile = a\n",
        "source_profile cycle: a -> b -> a", "a" },
      { "a missing source_profile", "[default]\nrole_arn = arn:aws:iam::1:role/r\nsource_profile = nope\n",
        "source_profile 'nope' of profile 'default': no profile 'nope' in" },
      { "mfa_serial",
        "[default]\nrole_arn = arn:aws:iam::1:role/r\nsource_profile = default\nmfa_serial = x\n",
        "profile 'default' uses mfa_serial, which emrflow does not support" },
      { "web_identity_token_file without role_arn", "[default]\nweb_identity_token_file = /t\n",
        "profile 'default' has web_identity_token_file but no role_arn" },
    }
    for _, c in ipairs(failing) do
      it("fails clearly for " .. c[1], function()
        local e = files(c[2])
        local _, err = creds.profile { env = e, profile = c[4] }:get()
        assert.equal("credentials", err.code)
        assert.truthy(err.message:find(c[3], 1, true), err.message)
        assert.truthy(err.message:find("failed", 1, true), err.message)
        assert_no_secret(err, { SECRET })
      end)
    end

    it("runs credential_process and reads its JSON (expiry included), also as a role's source", function()
      local script = write("proc.sh", "printf '%s' '" .. json.encode {
        Version = 1, AccessKeyId = "AKIDPROCESS", SecretAccessKey = SECRET, SessionToken = TOKEN,
        Expiration = "2099-01-01T00:00:00Z" } .. "'\n")
      local e = files("[default]\ncredential_process = sh " .. script .. "\n")
      local c = assert(creds.profile { env = e }:get())
      assert.equal("AKIDPROCESS", c.access_key_id)
      assert.equal(SECRET, c.secret_access_key)
      assert.equal(TOKEN, c.session_token)
      assert.equal(4070908800, c.expiration)
      assert.equal("process:default", c.source)
      local http, log = fake_http { ["POST https://sts.us-east-1.amazonaws.com/"] =
        sts_ok("AssumeRole", os.time() + 900) }
      e = files("[default]\nregion = us-east-1\nrole_arn = arn:aws:iam::1:role/r\nsource_profile = proc\n" ..
        "[profile proc]\ncredential_process = sh " .. script .. "\n")
      assert(creds.profile { env = e, http = http }:get())
      assert.truthy(header(log[1], "Authorization"):find("Credential=AKIDPROCESS/", 1, true))
      assert.equal(TOKEN, header(log[1], "X-Amz-Security-Token"))
    end)

    it("skips a default profile that does not exist or has no credentials", function()
      local _, err = creds.profile { env = files("[default]\nregion = us-east-1\n") }:get()
      assert.truthy(err.message:find("skipped (profile 'default' has no credentials", 1, true), err.message)
      _, err = creds.profile { env = files() }:get()
      assert.truthy(err.message:find("skipped (no profile 'default' in", 1, true), err.message)
    end)

    it("assumes a role chain through STS: each hop signed with the previous hop's credentials", function()
      local exp = os.time() + 3600
      local seen = {}
      local http = fake_http {
        ["POST https://sts.eu-west-1.amazonaws.com/"] = function(req)
          local f = form(req.body)
          seen[#seen + 1] = { role = f.RoleArn, session = f.RoleSessionName, external = f.ExternalId,
                              duration = f.DurationSeconds, auth = header(req, "Authorization"),
                              token = header(req, "X-Amz-Security-Token") }
          assert.equal("AssumeRole", f.Action)
          assert.equal("2011-06-15", f.Version)
          assert.equal("application/x-www-form-urlencoded; charset=utf-8", header(req, "Content-Type"))
          return sts_ok("AssumeRole", exp, f.RoleArn:match("role/(%w+)") == "middle" and "ASIAMIDDLE" or nil)
        end,
      }
      local e = files(table.concat({
        "[profile top]", "role_arn = arn:aws:iam::123456789012:role/top", "source_profile = middle",
        "role_session_name = my-session", "external_id = ext-123", "duration_seconds = 1800",
          "region = eu-west-1",
        "[profile middle]", "role_arn = arn:aws:iam::123456789012:role/middle", "source_profile = base",
      }, "\n"), "[base]\naws_access_key_id = AKIDBASE\naws_secret_access_key = " .. SECRET .. "\n")
      e.AWS_PROFILE = "top"
      local c = assert(creds.profile { env = e, http = http }:get())
      assert.equal(2, #seen)
      assert.equal("arn:aws:iam::123456789012:role/middle", seen[1].role)
      assert.truthy(seen[1].auth:find("Credential=AKIDBASE/%d+/eu%-west%-1/sts/aws4_request"), seen[1].auth)
      assert.is_nil(seen[1].token)
      assert.truthy(seen[1].session:match("^emrflow%-session%-%d+$"))
      assert.equal("arn:aws:iam::123456789012:role/top", seen[2].role)
      assert.truthy(seen[2].auth:find("Credential=ASIAMIDDLE/", 1, true), seen[2].auth)
      assert.truthy(seen[2].token:match("^stub%-token%-%d+$"))
      assert.equal("my-session", seen[2].session)
      assert.equal("ext-123", seen[2].external)
      assert.equal("1800", seen[2].duration)
      assert.equal(exp, c.expiration)
      assert.equal("profile:top", c.source)
      assert.equal("123456789012", c.account_id)
    end)

    it("uses a profile's own static keys when it is its own source_profile", function()
      local http, log = fake_http { ["POST https://sts.us-east-1.amazonaws.com/"] = sts_ok("AssumeRole",
        os.time() + 900) }
      local e = files("[default]\nregion = us-east-1\nrole_arn = arn:aws:iam::1:role/r\n" ..
        "source_profile = default\n",
                      "[default]\naws_access_key_id = AKIDSELF\naws_secret_access_key = s\n")
      assert(creds.profile { env = e, http = http }:get())
      assert.truthy(header(log[1], "Authorization"):find("Credential=AKIDSELF/", 1, true))
    end)

    it("takes the source from credential_source = Environment / EcsContainer", function()
      local http, log = fake_http {
        ["POST https://sts.us-east-1.amazonaws.com/"] = sts_ok("AssumeRole", os.time() + 900),
        ["GET http://169.254.170.2/v2/creds"] = creds_json(os.time() + 900, 7),
      }
      local e = files("[default]\nregion = us-east-1\nrole_arn = arn:aws:iam::1:role/r\n" ..
        "credential_source = Environment\n")
      e.AWS_ACCESS_KEY_ID, e.AWS_SECRET_ACCESS_KEY = "AKIDFROMENV", SECRET
      assert(creds.profile { env = e, http = http }:get())
      assert.truthy(header(log[1], "Authorization"):find("Credential=AKIDFROMENV/", 1, true))
      e = files("[default]\nregion = us-east-1\nrole_arn = arn:aws:iam::1:role/r\n" ..
        "credential_source = EcsContainer\n")
      e.AWS_CONTAINER_CREDENTIALS_RELATIVE_URI = "/v2/creds"
      assert(creds.profile { env = e, http = http }:get())
      assert.equal("GET http://169.254.170.2/v2/creds", log[2].method .. " " .. log[2].url)
      assert.truthy(header(log[3], "Authorization"):find("Credential=ASIAJSON7/", 1, true))
    end)

    it("reports an STS refusal with its code and message, and no secret", function()
      local http = fake_http { ["POST https://sts.us-east-1.amazonaws.com/"] =
        sts_error(403, "AccessDenied", "User is not authorized to perform: sts:AssumeRole") }
      local e = files("[default]\nregion = us-east-1\nrole_arn = arn:aws:iam::1:role/r\n" ..
        "source_profile = base\n",
                      "[base]\naws_access_key_id = AKIDBASE\naws_secret_access_key = " .. SECRET .. "\n")
      local _, err = creds.profile { env = e, http = http }:get()
      assert.truthy(err.message:find("profile 'default': STS AssumeRole at " ..
        "https://sts.us-east-1.amazonaws.com/ " ..
        "failed: AccessDenied: User is not authorized to perform: sts:AssumeRole (HTTP 403) [request rid-1]",
          1, true),
        err.message)
      assert_no_secret(err, { SECRET })
    end)

    it("uses the global STS endpoint, signed for us-east-1, when no region is configured", function()
      local http, log = fake_http { ["POST https://sts.amazonaws.com/"] = sts_ok("AssumeRole",
        os.time() + 900) }
      local e = files("[default]\nrole_arn = arn:aws:iam::1:role/r\nsource_profile = base\n",
                      "[base]\naws_access_key_id = AKIDBASE\naws_secret_access_key = s\n")
      assert(creds.profile { env = e, http = http }:get())
      assert.truthy(header(log[1], "Authorization"):find("/us%-east%-1/sts/aws4_request"))
    end)
  end)

  describe("web identity", function()
    it("calls AssumeRoleWithWebIdentity unsigned, re-reading the token file each time", function()
      local tokens = {}
      local http = fake_http { ["POST https://sts.us-west-2.amazonaws.com/"] = function(req)
        local f = form(req.body)
        assert.equal("AssumeRoleWithWebIdentity", f.Action)
        assert.is_nil(header(req, "Authorization"))
        tokens[#tokens + 1] = f.WebIdentityToken
        assert.equal("arn:aws:iam::123456789012:role/irsa", f.RoleArn)
        assert.equal("pod-session", f.RoleSessionName)
        return sts_ok("AssumeRoleWithWebIdentity", os.time() + 900)
      end }
      local file = write("token", "eyJ.first.token\n")
      local e = env { AWS_WEB_IDENTITY_TOKEN_FILE = file,
        AWS_ROLE_ARN = "arn:aws:iam::123456789012:role/irsa",
                      AWS_ROLE_SESSION_NAME = "pod-session", AWS_REGION = "us-west-2" }
      local p = creds.web_identity { env = e, http = http }
      local c = assert(p:get())
      assert.equal("web-identity", c.source)
      write("token", "eyJ.rotated.token")
      p:invalidate()
      assert(p:get())
      assert.same({ "eyJ.first.token", "eyJ.rotated.token" }, tokens)
    end)

    it("is skipped without a token file, fails without a role, and redacts the token from STS errors",
      function()
      local _, err = creds.web_identity { env = env { AWS_ROLE_ARN = "arn:aws:iam::1:role/r" } }:get()
      assert.truthy(err.message:find("skipped (AWS_WEB_IDENTITY_TOKEN_FILE is not set)", 1, true),
        err.message)
      local file = write("token2", "eyJ.secret.jwt")
      _, err = creds.web_identity { env = env { AWS_WEB_IDENTITY_TOKEN_FILE = file } }:get()
      assert.truthy(err.message:find("failed (AWS_WEB_IDENTITY_TOKEN_FILE is set but AWS_ROLE_ARN is not)",
        1, true))
      local http = fake_http { ["POST https://sts.amazonaws.com/"] =
        sts_error(400, "InvalidIdentityToken", "token eyJ.secret.jwt has the wrong audience") }
      _, err = creds.web_identity { env = env { AWS_WEB_IDENTITY_TOKEN_FILE = file,
        AWS_ROLE_ARN = "arn:aws:iam::1:role/r" },
                                    http = http }:get()
      assert.truthy(err.message:find("InvalidIdentityToken: token <redacted> has the wrong audience (HTTP " ..
        "400)", 1, true),
        err.message)
      assert_no_secret(err, { "eyJ.secret.jwt" })
      _, err = creds.web_identity { env = env { AWS_WEB_IDENTITY_TOKEN_FILE = tmpdir .. "/no-token",
                                                AWS_ROLE_ARN = "arn:aws:iam::1:role/r" } }:get()
      assert.truthy(err.message:find("cannot read web identity token file " .. tmpdir .. "/no-token", 1,
        true))
    end)
  end)

  describe("container", function()
    it("uses 169.254.170.2 + RELATIVE_URI", function()
      local http,
        log = fake_http { ["GET http://169.254.170.2/v2/credentials/abc"] = creds_json(os.time() + 900) }
      local c = assert(creds.container {
        env = env { AWS_CONTAINER_CREDENTIALS_RELATIVE_URI = "/v2/credentials/abc" },
                                         http = http }:get())
      assert.equal("ASIAJSON1", c.access_key_id)
      assert.equal("json/secret+1", c.secret_access_key)
      assert.equal("json-token-1", c.session_token)
      assert.is_nil(header(log[1], "Authorization"))
      assert.equal(2000, log[1].timeout_ms)
    end)

    it("uses FULL_URI with the token file (re-read each fetch, wins over the token variable)", function()
      local auths = {}
      local http = fake_http { ["GET http://169.254.170.23/v1/credentials"] = function(req)
        auths[#auths + 1] = header(req, "Authorization")
        return creds_json(os.time() + 900)
      end }
      local file = write("pod-token", "pod-token-one")
      local e = env { AWS_CONTAINER_CREDENTIALS_FULL_URI = "http://169.254.170.23/v1/credentials",
                      AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE = file,
                        AWS_CONTAINER_AUTHORIZATION_TOKEN = "ignored" }
      local p = creds.container { env = e, http = http }
      assert(p:get())
      write("pod-token", "pod-token-two\n")
      p:invalidate()
      assert(p:get())
      e.AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE = nil
      p:invalidate()
      assert(p:get())
      assert.same({ "pod-token-one", "pod-token-two", "ignored" }, auths)
    end)

    local uris = {
      { "http://127.0.0.1:8080/creds", true }, { "http://127.1.2.3/creds", true },
      { "http://localhost/creds", true }, { "http://[::1]:9/c", true }, { "http://169.254.170.2/c", true },
      { "http://169.254.170.23/v1/credentials", true }, { "http://[fd00:ec2::23]/v1/credentials", true },
      { "https://creds.example.com/anything", true },
      { "http://creds.example.com/c", false, "uses plain http to host 'creds.example.com'" },
      { "http://user@10.0.0.1/c", false, "uses plain http to host '10.0.0.1'" },
      { "ftp://127.0.0.1/c", false, "must use http or https" },
      { "/relative", false, "is not an absolute http(s) URL" },
    }
    for _, u in ipairs(uris) do
      it((u[2] and "allows " or "refuses ") .. u[1], function()
        local http = fake_http { ["GET *"] = creds_json(os.time() + 900) }
        local c, err = creds.container { env = env { AWS_CONTAINER_CREDENTIALS_FULL_URI = u[1] },
          http = http }:get()
        if u[2] then
          assert.is_not_nil(c, err and err.message)
        else
          assert.is_nil(c)
          assert.truthy(err.message:find("AWS_CONTAINER_CREDENTIALS_FULL_URI " .. u[3], 1, true), err.message)
        end
      end)
    end

    it("fails on a token with a line break, and reports HTTP errors without the token", function()
      local file = write("bad-token", "abc\r\nX-Injected: 1")
      local _, err = creds.container { env = env { AWS_CONTAINER_CREDENTIALS_FULL_URI = "http://127.0.0.1/c",
                                                   AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE = file } }:get()
      assert.truthy(err.message:find("the container authorization token contains a line break", 1, true))
      local http = fake_http { ["GET http://127.0.0.1/c"] = { status = 401, headers = {},
        body = '{"code":"AccessDeniedException","message":"bad token sekrit-pod-token"}' } }
      _, err = creds.container { env = env { AWS_CONTAINER_CREDENTIALS_FULL_URI = "http://127.0.0.1/c",
                                             AWS_CONTAINER_AUTHORIZATION_TOKEN = "sekrit-pod-token" },
                                               http = http }:get()
      assert.truthy(err.message:find("http://127.0.0.1/c replied HTTP 401: AccessDeniedException: bad " ..
        "token <redacted>",
        1, true), err.message)
      assert_no_secret(err, { "sekrit-pod-token" })
    end)

    it("retries a 5xx or network error (3 attempts)", function()
      local n = 0
      local http = fake_http { ["GET http://127.0.0.1/c"] = function()
        n = n + 1
        if n < 3 then return { status = 503, headers = {}, body = "busy" } end
        return creds_json(os.time() + 900)
      end }
      local c = creds.container { env = env { AWS_CONTAINER_CREDENTIALS_FULL_URI = "http://127.0.0.1/c" },
        http = http,
                                  sleep = function() end }:get()
      assert.is_not_nil(c)
      assert.equal(3, n)
    end)
  end)

  describe("EC2 instance metadata", function()
    local function imds_routes(state)
      local base = "http://169.254.169.254"
      return {
        ["PUT " .. base .. "/latest/api/token"] = function(req)
          state.tokens = (state.tokens or 0) + 1
          assert.equal("21600", header(req, "X-aws-ec2-metadata-token-ttl-seconds"))
          return { status = 200, headers = {}, body = "tok" .. state.tokens }
        end,
        ["GET " .. base .. "/latest/meta-data/iam/security-credentials/"] = function(req)
          if header(req, "X-aws-ec2-metadata-token") ~= "tok" .. state.tokens then
            return { status = 401, headers = {}, body = "" }
          end
          state.lists = (state.lists or 0) + 1
          if state.no_role then return { status = 404, headers = {}, body = "" } end
          return { status = 200, headers = {}, body = "my-role\n" }
        end,
        ["GET " .. base .. "/latest/meta-data/iam/security-credentials/my-role"] = function(req)
          if header(req, "X-aws-ec2-metadata-token") ~= "tok" .. state.tokens then
            return { status = 401, headers = {}, body = "" }
          end
          state.creds = (state.creds or 0) + 1
          return creds_json(os.time() + 3600, state.creds)
        end,
      }
    end

    it("gets a token first, lists the role, fetches its credentials, and reuses the token", function()
      local state = {}
      local http, log = fake_http(imds_routes(state))
      local e = env { AWS_EC2_METADATA_DISABLED = "false" }
      local p = creds.imds { env = e, http = http }
      local c = assert(p:get())
      assert.equal("ASIAJSON1", c.access_key_id)
      assert.equal("PUT", log[1].method)
      assert.equal(1000, log[1].timeout_ms)
      p:invalidate()
      assert(p:get())
      assert.equal(1, state.tokens)
      assert.equal(1, state.lists) -- the role name is remembered too
      assert.equal(2, state.creds)
    end)

    it("fetches a new token once when the old one is refused (401)", function()
      local state = {}
      local http = fake_http(imds_routes(state))
      local p = creds.imds { env = env { AWS_EC2_METADATA_DISABLED = "false" }, http = http }
      assert(p:get())
      state.tokens = state.tokens + 10 -- the instance forgot our token
      p:invalidate()
      assert(p:get())
      assert.equal(12, state.tokens)
    end)

    it("falls back to IMDSv1 when the token call is not supported, unless v1 is disabled", function()
      local base = "http://169.254.169.254"
      local http, log = fake_http {
        ["PUT " .. base .. "/latest/api/token"] = { status = 405, headers = {}, body = "" },
        ["GET " .. base .. "/latest/meta-data/iam/security-credentials/"] =
          { status = 200, headers = {}, body = "r" },
        ["GET " .. base .. "/latest/meta-data/iam/security-credentials/r"] = creds_json(os.time() + 900, 9),
      }
      local c = assert(creds.imds { env = env { AWS_EC2_METADATA_DISABLED = "false" }, http = http }:get())
      assert.equal("ASIAJSON9", c.access_key_id)
      assert.is_nil(header(log[2], "X-aws-ec2-metadata-token"))
      local _, err = creds.imds { env = env { AWS_EC2_METADATA_DISABLED = "false",
                                              AWS_EC2_METADATA_V1_DISABLED = "true" }, http = http }:get()
      assert.truthy(err.message:find("the IMDSv2 token request to " .. base .. " replied HTTP 405", 1, true),
        err.message)
    end)

    it("is skipped when disabled and says why it failed otherwise", function()
      local _, err = creds.imds { env = env() }:get()
      assert.truthy(err.message:find("skipped (AWS_EC2_METADATA_DISABLED is true)", 1, true))
      local state = { no_role = true }
      _, err = creds.imds { env = env { AWS_EC2_METADATA_DISABLED = "false" },
        http = fake_http(imds_routes(state)) }:get()
      assert.truthy(err.message:find("no IAM role is attached to this instance (HTTP 404)", 1, true),
        err.message)
      _, err = creds.imds { env = env { AWS_EC2_METADATA_DISABLED = "false",
                                        AWS_EC2_METADATA_SERVICE_ENDPOINT = "http://127.0.0.1:1" },
                            http = fake_http {} }:get()
      assert.truthy(err.message:find("no reply from http://127.0.0.1:1 (not on EC2?): connect error", 1,
        true),
        err.message)
    end)
  end)
end)

describe("emrflow.credentials.chain", function()
  local function everything(t)
    -- every source configured; t removes some (false) or adds some
    local exp = os.time() + 3600
    local wif = write("wi-token", "wi-token")
    local e = {
      AWS_CONFIG_FILE = tmpdir .. "/none", AWS_REGION = "us-east-1",
      AWS_SHARED_CREDENTIALS_FILE = write("chain-creds", "[default]\naws_access_key_id = AKIDPROFILE\n" ..
        "aws_secret_access_key = profilesecret\n[other]\naws_access_key_id = AKIDOTHER\n" ..
          "aws_secret_access_key = o\n"),
      AWS_ACCESS_KEY_ID = "AKIDENV", AWS_SECRET_ACCESS_KEY = SECRET,
      AWS_WEB_IDENTITY_TOKEN_FILE = wif, AWS_ROLE_ARN = "arn:aws:iam::1:role/wi",
      AWS_CONTAINER_CREDENTIALS_FULL_URI = "http://127.0.0.1/c",
      AWS_EC2_METADATA_DISABLED = "false",
    }
    for k, v in pairs(t or {}) do
      if v == false then e[k] = nil else e[k] = v end
    end
    local http = fake_http {
      ["POST https://sts.us-east-1.amazonaws.com/"] = sts_ok("AssumeRoleWithWebIdentity", exp, "ASIAWEBID"),
      ["GET http://127.0.0.1/c"] = { status = 200, headers = {}, body = json.encode {
        AccessKeyId = "ASIACONTAINER", SecretAccessKey = "c", Token = "t", Expiration = iso(exp) } },
      ["PUT http://169.254.169.254/latest/api/token"] = { status = 200, headers = {}, body = "tok" },
      ["GET http://169.254.169.254/latest/meta-data/iam/security-credentials/"] = { status = 200,
        headers = {},
        body = "r" },
      ["GET http://169.254.169.254/latest/meta-data/iam/security-credentials/r"] = { status = 200,
        headers = {},
        body = json.encode { Code = "Success", AccessKeyId = "ASIAIMDS", SecretAccessKey = "i", Token = "t",
                             Expiration = iso(exp) } },
    }
    return e, http
  end

  local order = {
    { "explicit credentials beat everything", {}, "AKIDEXPLICIT", true },
    { "the environment beats the files", {}, "AKIDENV" },
    -- ecosystem.md (c): web identity from the environment (3) before the shared files (4)
    { "web identity beats the files", { AWS_ACCESS_KEY_ID = false, AWS_SECRET_ACCESS_KEY = false },
      "ASIAWEBID" },
    { "the files beat container", { AWS_ACCESS_KEY_ID = false, AWS_SECRET_ACCESS_KEY = false,
      AWS_WEB_IDENTITY_TOKEN_FILE = false }, "AKIDPROFILE" },
    { "web identity beats container", { AWS_ACCESS_KEY_ID = false, AWS_SECRET_ACCESS_KEY = false,
      AWS_SHARED_CREDENTIALS_FILE = false }, "ASIAWEBID" },
    { "container beats IMDS", { AWS_ACCESS_KEY_ID = false, AWS_SECRET_ACCESS_KEY = false,
      AWS_SHARED_CREDENTIALS_FILE = false, AWS_WEB_IDENTITY_TOKEN_FILE = false }, "ASIACONTAINER" },
    { "IMDS comes last", { AWS_ACCESS_KEY_ID = false, AWS_SECRET_ACCESS_KEY = false,
      AWS_SHARED_CREDENTIALS_FILE = false, AWS_WEB_IDENTITY_TOKEN_FILE = false,
      AWS_CONTAINER_CREDENTIALS_FULL_URI = false }, "ASIAIMDS" },
  }
  for _, c in ipairs(order) do
    it(c[1], function()
      local e, http = everything(c[2])
      local opts = { env = e, http = http }
      if c[4] then opts.credentials = { access_key_id = "AKIDEXPLICIT", secret_access_key = "x" } end
      local got = assert(creds.chain(opts):get())
      assert.equal(c[3], got.access_key_id)
    end)
  end

  it("skips the environment when a profile is named in code", function()
    local e, http = everything()
    assert.equal("AKIDOTHER", assert(creds.chain { env = e, http = http,
      profile = "other" }:get()).access_key_id)
  end)

  it("sticks to the provider that won; invalidate() walks the whole chain again", function()
    local e, http = everything()
    local p = creds.chain { env = e, http = http }
    assert.equal("AKIDENV", p:get().access_key_id)
    e.AWS_ACCESS_KEY_ID, e.AWS_SECRET_ACCESS_KEY = nil, nil
    assert.equal("AKIDENV", p:get().access_key_id) -- cached, no expiry
    p:invalidate()
    assert.equal("ASIAWEBID", p:get().access_key_id)
    assert.equal(2, p:stats().fetches)
  end)

  it("lists every provider and why it was skipped when there are no credentials", function()
    local _, err = creds.chain { env = env { HOME = "/nonexistent" } }:get()
    assert.equal("credentials", err.code)
    assert.equal(table.concat({
      "no AWS credentials found; tried, in order:",
      "  1. explicit credentials: skipped (none passed in code)",
      "  2. environment (AWS_ACCESS_KEY_ID): skipped (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not " ..
        "set)",
      "  3. web identity (AWS_WEB_IDENTITY_TOKEN_FILE): skipped (AWS_WEB_IDENTITY_TOKEN_FILE is not set)",
      "  4. shared config/credentials files: skipped (no profile 'default' in " .. tmpdir ..
        "/none-config or " ..
        tmpdir .. "/none-creds)",
      "  5. container credentials (ECS / EKS Pod Identity): skipped " ..
        "(AWS_CONTAINER_CREDENTIALS_RELATIVE_URI and " ..
        "AWS_CONTAINER_CREDENTIALS_FULL_URI are not set)",
      "  6. EC2 instance metadata (IMDSv2): skipped (AWS_EC2_METADATA_DISABLED is true)",
    }, "\n"), err.message)
    assert.equal(6, #err.tried)
    assert.same({ provider = "environment", label = "environment (AWS_ACCESS_KEY_ID)", status = "skipped",
                  reason = "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set" }, err.tried[2])
    assert.truthy(tostring(err):find("^emrflow: credentials: no AWS credentials found"))
  end)

  it("stops at a configured provider that fails (no fall-back to another identity)", function()
    local e, http = everything { AWS_ACCESS_KEY_ID = false, AWS_SHARED_CREDENTIALS_FILE = false }
    local _, err = creds.chain { env = e, http = http }:get()
    assert.truthy(err.message:find("^could not get AWS credentials; tried, in order:"), err.message)
    assert.truthy(err.message:find("2. environment (AWS_ACCESS_KEY_ID): failed (AWS_SECRET_ACCESS_KEY is " ..
      "set but " ..
      "AWS_ACCESS_KEY_ID is not)", 1, true), err.message)
    assert.truthy(err.message:find("3. web identity (AWS_WEB_IDENTITY_TOKEN_FILE): not tried", 1, true))
    assert.truthy(err.message:find("6. EC2 instance metadata (IMDSv2): not tried", 1, true))
    assert_no_secret(err, { SECRET })
  end)

  it("never lets a secret into an error or a tostring, whatever fails", function()
    local secret_file = write("leaky", "[default]\naws_secret_access_key = " .. SECRET ..
      "\naws_session_token = " ..
      TOKEN .. "\n")
    local cases = {
      env { AWS_SECRET_ACCESS_KEY = SECRET, AWS_SESSION_TOKEN = TOKEN },
      env { AWS_SHARED_CREDENTIALS_FILE = secret_file },
      env { AWS_CONTAINER_CREDENTIALS_FULL_URI = "http://127.0.0.1/c",
        AWS_CONTAINER_AUTHORIZATION_TOKEN = TOKEN },
    }
    for _, e in ipairs(cases) do
      local p = creds.chain { env = e, http = fake_http { ["GET *"] = { status = 500, headers = {},
        body = "echo " .. TOKEN .. " " .. SECRET } }, sleep = function() end }
      local c, err = p:get()
      assert.is_nil(c)
      assert_no_secret(err, { SECRET, TOKEN })
      assert_no_secret(tostring(p), { SECRET, TOKEN })
    end
    local good = assert(creds.chain { env = env { AWS_ACCESS_KEY_ID = "AKIDX", AWS_SECRET_ACCESS_KEY = SECRET,
                                                  AWS_SESSION_TOKEN = TOKEN } }:get())
    assert.falsy(tostring(good):find(SECRET, 1, true))
    assert.falsy(tostring(good):find(TOKEN, 1, true))
  end)

  it("raises on misuse", function()
    assert.has_error(function() creds.chain { envv = {} } end,
      "emrflow.credentials.chain: unknown option 'envv'")
    assert.has_error(function() creds.chain { env = "x" } end,
      "emrflow.credentials.chain: option 'env' must be a table")
    assert.has_error(function() creds.chain { providers = { {} } } end,
      "emrflow.credentials.chain: providers[1] is not a credentials provider")
    assert.has_error(function() creds.chain { credentials = { access_key_id = "A" } } end,
      "emrflow.credentials.chain: credentials.secret_access_key must be a non-empty string")
  end)

  describe("caching and refresh", function()
    local function container_env()
      return env { AWS_CONTAINER_CREDENTIALS_FULL_URI = "http://127.0.0.1/c" }
    end

    it("caches until refresh_window_s before expiry, then fetches again", function()
      local clock = 1000000
      local n = 0
      local http = fake_http { ["GET http://127.0.0.1/c"] = function()
        n = n + 1
        return creds_json(clock + 900, n)
      end }
      local p = creds.chain { env = container_env(), http = http, now = function() return clock end }
      assert.equal("ASIAJSON1", p:get().access_key_id)
      clock = clock + 599
      assert.equal("ASIAJSON1", p:get().access_key_id)
      assert.equal(1, n)
      clock = clock + 1 -- 300 s before expiry
      assert.equal("ASIAJSON2", p:get().access_key_id)
      assert.equal(2, n)
      assert.equal("ASIAJSON2", p:get().access_key_id)
      assert.equal(2, n)
    end)

    it("has a configurable window, and refreshes short-lived credentials half-way", function()
      local clock = 1000000
      local n = 0
      local life = 3600
      local http = fake_http { ["GET http://127.0.0.1/c"] = function()
        n = n + 1
        return creds_json(clock + life, n)
      end }
      local p = creds.chain { env = container_env(), http = http, now = function() return clock end,
                              refresh_window_s = 60 }
      p:get()
      clock = clock + 3539
      p:get()
      assert.equal(1, n)
      clock = clock + 1
      p:get()
      assert.equal(2, n)
      life = 120 -- shorter than twice the window: refreshed after 60 s, not at once
      local q = creds.chain { env = container_env(), http = http, now = function() return clock end,
                              refresh_window_s = 100 }
      q:get()
      clock = clock + 59
      q:get()
      assert.equal(3, n)
      clock = clock + 1
      q:get()
      assert.equal(4, n)
    end)

    it("keeps still-valid credentials when a refresh fails, and errors once they expire", function()
      local clock = 1000000
      local up = true
      local http = fake_http { ["GET http://127.0.0.1/c"] = function()
        if up then return creds_json(clock + 900, 1) end
        return { status = 500, headers = {}, body = "down" }
      end }
      local p = creds.chain { env = container_env(), http = http, now = function() return clock end,
                              sleep = function() end }
      local c1 = assert(p:get())
      up = false
      clock = clock + 700
      assert.equal(c1, p:get())
      clock = clock + 200 -- expired now
      local c, err = p:get()
      assert.is_nil(c)
      assert.truthy(err.message:find("refreshing AWS credentials failed: container credentials (ECS / EKS " ..
        "Pod " ..
        "Identity) (refresh): failed (http://127.0.0.1/c replied HTTP 500: down)", 1, true), err.message)
    end)

    it("refuses credentials that are already expired when they arrive", function()
      local clock = 1000000
      local http = fake_http { ["GET http://127.0.0.1/c"] = creds_json(clock - 10, 1) }
      local _, err = creds.container { env = container_env(), http = http,
        now = function() return clock end }:get()
      assert.truthy(err.message:find("the credentials it returned expired at", 1, true), err.message)
    end)

    it("shares one fetch among concurrent scheduler tasks (single flight)", function()
      local s = scheduler.new { clock = "virtual", start = 1000000 }
      local n = 0
      local http = function(req)
        assert.equal("http://127.0.0.1/c", req.url)
        n = n + 1
        scheduler.sleep(2) -- the request is in flight: other tasks run meanwhile
        return creds_json(scheduler.now() + 900, n)
      end
      local p = creds.chain { env = container_env(), http = http, now = scheduler.now }
      local tasks = {}
      for i = 1, 5 do tasks[i] = s:spawn(function() return p:get() end) end
      s:run()
      local first = select(2, tasks[1]:result())
      for i = 1, 5 do
        local ok, c = tasks[i]:result()
        assert.is_true(ok)
        assert.equal(first, c)
      end
      assert.equal(1, n)
      -- and one fetch again at refresh time, however many ask
      local t2 = {}
      for i = 1, 3 do
        t2[i] = s:spawn(function()
          scheduler.sleep(700)
          return p:get()
        end)
      end
      s:run()
      assert.equal(2, n)
      assert.equal("ASIAJSON2", select(2, t2[3]:result()).access_key_id)
    end)

    it("judges expiry by the real clock by default, even under a virtual scheduler far ahead", function()
      local s = scheduler.new { clock = "virtual", start = os.time() + 10 * 86400 }
      local n = 0
      local http = function()
        n = n + 1
        return creds_json(os.time() + 900, n)
      end
      local p = creds.chain { env = container_env(), http = http }
      local t = s:spawn(function()
        local a = assert(p:get())
        scheduler.sleep(3600) -- virtual: an hour "passes" at once
        return a, assert(p:get())
      end)
      s:run()
      local ok, a, b = t:result()
      assert.is_true(ok)
      assert.equal(a, b)
      assert.equal(1, n)
    end)

    it("lets a waiter fetch itself when the fetching task is cancelled", function()
      local s = scheduler.new { clock = "virtual", start = 1000000 }
      local n = 0
      local http = function()
        n = n + 1
        scheduler.sleep(5)
        return creds_json(scheduler.now() + 900, n)
      end
      local p = creds.chain { env = container_env(), http = http, now = scheduler.now }
      local a = s:spawn(function() return p:get() end)
      local b = s:spawn(function() return p:get() end)
      s:spawn(function()
        scheduler.sleep(1)
        s:cancel(a, { Error = "States.Cancelled", Cause = "test" })
      end)
      s:run()
      assert.is_false((a:result()))
      local ok, c = b:result()
      assert.is_true(ok)
      assert.equal("ASIAJSON2", c.access_key_id)
      assert.equal(2, n)
      assert.is_nil(p.inflight)
    end)
  end)
end)

-------------------------------------------------------------------------------
-- Part 2: real HTTP against spec/support/fake_creds.py
-------------------------------------------------------------------------------

local has_fake, fake = pcall(require, "support.fake")
local core = require "emrflow.core"
local has_http = type(core.http) == "table" and core.http.poller ~= nil

describe("emrflow.credentials against fake_creds.py", function()
  if not (has_fake and has_http) then
    pending("needs spec/support/fake.lua and core.http")
    return
  end
  local srv
  local STATIC_SECRET = "fakeStaticSecret/0123456789+abcdefghij"

  setup(function()
    srv = fake.start("fake_creds", { "--key", "AKIDFAKESTATIC:" .. STATIC_SECRET })
  end)
  teardown(function()
    if srv then srv:stop() end
  end)
  before_each(function()
    srv:control("POST", "/__fake/reset")
  end)

  local function stats() return srv:control("GET", "/__fake/stats") end

  local function fenv(t)
    local e = env {
      AWS_REGION = "us-east-1", AWS_ENDPOINT_URL_STS = srv.url,
      AWS_EC2_METADATA_SERVICE_ENDPOINT = srv.url,
    }
    for k, v in pairs(t or {}) do e[k] = v end
    return e
  end

  it("assumes a role chain with SigV4 signatures botocore accepts", function()
    local e = fenv {
      AWS_CONFIG_FILE = write("it-config", "[profile top]\nrole_arn = arn:aws:iam::123456789012:role/top\n" ..
        "source_profile = mid\nexternal_id = ext-1\n[profile mid]\n" ..
          "role_arn = arn:aws:iam::123456789012:role/mid\n" ..
        "source_profile = base\n"),
      AWS_SHARED_CREDENTIALS_FILE = write("it-creds", "[base]\naws_access_key_id = AKIDFAKESTATIC\n" ..
        "aws_secret_access_key = " .. STATIC_SECRET .. "\n"),
      AWS_PROFILE = "top",
    }
    local c, err = creds.chain { env = e }:get()
    assert.is_not_nil(c, err and err.message)
    local st = stats()
    assert.equal(2, st.assume_role)
    assert.equal(0, st.signature_failures)
    assert.equal("arn:aws:iam::123456789012:role/top", st.last_role_arn)
    assert.equal("ext-1", st.last_external_id)
    assert.equal("content-type;host;x-amz-date;x-amz-security-token", st.last_signed_headers)
    local issued = srv:control("GET", "/__fake/issued").issued
    assert.equal(issued[2].access_key_id, c.access_key_id)
    assert.equal(issued[2].secret_access_key, c.secret_access_key)
    assert.equal(issued[2].session_token, c.session_token)
    assert.equal(issued[2].expiration, c.expiration)
  end)

  it("reports a signature the fake rejects (wrong secret) without leaking it", function()
    local e = fenv {
      AWS_SHARED_CREDENTIALS_FILE = write("it-bad", "[default]\nrole_arn = arn:aws:iam::1:role/r\n" ..
        "source_profile = base\n[base]\naws_access_key_id = AKIDFAKESTATIC\n" ..
          "aws_secret_access_key = wrongSecret123\n"),
    }
    local _, err = creds.chain { env = e }:get()
    assert.truthy(err.message:find("SignatureDoesNotMatch", 1, true), err.message)
    assert.truthy(err.message:find("(HTTP 403)", 1, true))
    assert_no_secret(err, { "wrongSecret123", STATIC_SECRET })
    assert.equal(1, stats().signature_failures)
  end)

  it("does IRSA web identity, and the fake's echo of the token is redacted", function()
    local file = write("it-token", "web-identity-token-1")
    local e = fenv { AWS_WEB_IDENTITY_TOKEN_FILE = file,
      AWS_ROLE_ARN = "arn:aws:iam::123456789012:role/irsa" }
    local c = assert(creds.chain { env = e }:get())
    assert.equal(srv:control("GET", "/__fake/issued").issued[1].access_key_id, c.access_key_id)
    assert.equal(1, stats().assume_role_with_web_identity)
    srv:control("POST", "/__fake/config", { echo_token_in_error = true, web_token = "other" })
    local _, err = creds.chain { env = e }:get()
    assert.truthy(err.message:find("InvalidIdentityToken", 1, true), err.message)
    assert_no_secret(err, { "web-identity-token-1" })
  end)

  it("gets container credentials with the Authorization header", function()
    local e = fenv { AWS_CONTAINER_CREDENTIALS_FULL_URI = srv.url .. "/v1/credentials",
                     AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE = write("it-pod", "container-token-1") }
    local c = assert(creds.chain { env = e }:get())
    assert.equal("123456789012", c.account_id)
    assert.is_true(stats().last_container_authorization_ok)
    write("it-pod", "stale-token")
    local _, err = creds.container { env = e }:get()
    assert.truthy(err.message:find("replied HTTP 401: AccessDeniedException", 1, true), err.message)
    assert_no_secret(err, { "stale-token" })
  end)

  it("gets IMDSv2 credentials (token first) and reuses the token on refresh", function()
    srv:control("POST", "/__fake/config", { expiration_seconds = 900 })
    local clock = os.time()
    local p = creds.chain { env = fenv { AWS_EC2_METADATA_DISABLED = "false" },
      now = function() return clock end }
    local c1 = assert(p:get())
    clock = clock + 601
    local c2 = assert(p:get())
    assert.are_not.equal(c1.access_key_id, c2.access_key_id)
    local st = stats()
    assert.equal(1, st.imds_token)
    assert.equal(1, st.imds_list)
    assert.equal(2, st.imds_credentials)
    -- a revoked token is replaced once
    srv:control("POST", "/__fake/expire_imds_tokens")
    clock = clock + 601
    srv:control("POST", "/__fake/config", { now = clock }) -- the fake's clock follows ours
    assert(p:get())
    assert.equal(2, stats().imds_token)
  end)

  it("refreshes on expiry with one fetch shared by concurrent tasks over real HTTP", function()
    srv:control("POST", "/__fake/config", { expiration_seconds = 900 })
    local s = scheduler.new { clock = "real" }
    local clock = os.time()
    local p = creds.chain { env = fenv { AWS_CONTAINER_CREDENTIALS_FULL_URI = srv.url .. "/container/creds",
                                         AWS_CONTAINER_AUTHORIZATION_TOKEN = "container-token-1" },
                            now = function() return clock end }
    local function burst()
      local ts = {}
      for i = 1, 4 do ts[i] = s:spawn(function() return p:get() end) end
      s:run()
      local ids = {}
      for i = 1, 4 do
        local ok, c = ts[i]:result()
        assert.is_true(ok)
        ids[i] = c.access_key_id
      end
      return ids
    end
    local a = burst()
    assert.equal(1, stats().container)
    clock = clock + 601
    local b = burst()
    assert.equal(2, stats().container)
    for i = 2, 4 do
      assert.equal(a[1], a[i])
      assert.equal(b[1], b[i])
    end
    assert.are_not.equal(a[1], b[1])
    s:close()
  end)

  it("fails IMDS quickly when nothing listens, and lists it", function()
    local e = env { AWS_EC2_METADATA_DISABLED = "false",
      AWS_EC2_METADATA_SERVICE_ENDPOINT = "http://127.0.0.1:9" }
    local t0 = os.time()
    local _, err = creds.chain { env = e }:get()
    assert.truthy(os.time() - t0 <= 3)
    assert.truthy(err.message:find("6. EC2 instance metadata (IMDSv2): failed (no reply from " ..
      "http://127.0.0.1:9",
      1, true), err.message)
  end)
end)
