local config = require "emrflow.config"
local ini = require "emrflow.ini"

local tmpdir
local function write(name, text)
  local path = tmpdir .. "/" .. name
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
  return path
end

-- An environment table whose files default to nonexistent paths (never the user's ~/.aws).
local function env(t)
  local e = { AWS_CONFIG_FILE = tmpdir .. "/none-config", AWS_SHARED_CREDENTIALS_FILE = tmpdir ..
    "/none-creds" }
  for k, v in pairs(t or {}) do e[k] = v end
  return e
end

setup(function()
  tmpdir = os.tmpname()
  os.remove(tmpdir)
  assert(os.execute("mkdir -p '" .. tmpdir .. "'"))
end)

teardown(function()
  os.execute("rm -rf '" .. tmpdir .. "'")
end)

describe("emrflow.ini", function()
  it("parses sections, both delimiters, comments, blanks and case-insensitive keys", function()
    local s, order = assert(ini.parse(table.concat({
      "# comment",
      "; another",
      "[default]",
      "Region = us-west-2",
      "output: json",
      "",
      "[profile dev]",
      "  role_arn   =   arn:aws:iam::123456789012:role/dev  ",
      "source_profile=default",
      "note = a # not a comment",
    }, "\n")))
    assert.same({ "default", "profile dev" }, order)
    assert.same({ region = "us-west-2", output = "json" }, s.default)
    assert.equal("arn:aws:iam::123456789012:role/dev", s["profile dev"].role_arn)
    assert.equal("default", s["profile dev"].source_profile)
    assert.equal("a # not a comment", s["profile dev"].note)
  end)

  it("reads indented sub-sections after an empty value, and continuation lines", function()
    local s = assert(ini.parse(table.concat({
      "[services local]",
      "emr_containers =",
      "  endpoint_url = http://127.0.0.1:1234",
      "sts =",
      "\tendpoint_url = http://127.0.0.1:5678",
      "[x]",
      "long = first",
      "  second",
    }, "\n")))
    assert.same({ endpoint_url = "http://127.0.0.1:1234" }, s["services local"].emr_containers)
    assert.same({ endpoint_url = "http://127.0.0.1:5678" }, s["services local"].sts)
    assert.equal("first\nsecond", s.x.long)
  end)

  it("handles CRLF line ends, a BOM, no final newline, repeated sections and keys", function()
    local s = assert(ini.parse("\239\187\191[a]\r\nk = 1\r\n[b]\r\nk = 2\r\n[a]\r\nk = 3\r\nj = 4"))
    assert.same({ k = "3", j = "4" }, s.a)
    assert.same({ k = "2" }, s.b)
  end)

  local bad = {
    { "key before any section", "k = v\n[a]\n", "<string>:1: 'key = value' line before any" },
    { "unclosed header", "[a]\n[profile b\n", "<string>:2: section header is missing its closing" },
    { "empty header", "[ ]\n", "<string>:1: empty section name" },
    { "line without delimiter", "[a]\nAKIASECRETLOOKINGVALUE\n",
      "<string>:2: expected '[section]' or 'key = value'" },
    { "bad sub-section line", "[a]\ns3 =\n  oops\n",
      "<string>:3: expected 'key = value' in the sub-section of 's3'" },
  }
  for _, case in ipairs(bad) do
    it("reports " .. case[1] .. " with file and line, never the line's text", function()
      local s, err = ini.parse(case[2])
      assert.is_nil(s)
      assert.truthy(err:find(case[3], 1, true), err)
      assert.falsy(err:find("AKIASECRETLOOKINGVALUE", 1, true))
    end)
  end

  it("maps config-file sections to profiles like the AWS CLI", function()
    local s, order = assert(ini.parse(table.concat({
      "[profile default]", "region = eu-west-1",
      "[default]", "region = us-east-1", "output = json",
      "[profile   spaced  ]", "region = ap-south-1",
      "[notaprofile]", "region = nowhere",
      "[services svc]", "sts =", "  endpoint_url = http://x",
      "[sso-session corp]", "sso_region = us-east-1",
    }, "\n")))
    local profiles, services, sso = ini.config_profiles(s, order)
    assert.same({ region = "eu-west-1", output = "json" }, profiles.default) -- [profile default] wins
    assert.same({ region = "ap-south-1" }, profiles.spaced)
    assert.is_nil(profiles.notaprofile)
    assert.same({ sts = { endpoint_url = "http://x" } }, services.svc)
    assert.same({ sso_region = "us-east-1" }, sso.corp)
  end)

  it("treats a missing file as missing, and raises on misuse", function()
    local s, err, kind = ini.read_file(tmpdir .. "/does-not-exist")
    assert.is_nil(s)
    assert.equal("missing", kind)
    assert.truthy(err:find("does-not-exist", 1, true))
    assert.has_error(function() ini.parse(42) end, "emrflow.ini.parse: text must be a string, got number")
  end)
end)

describe("emrflow.config.resolve", function()
  describe("region", function()
    local cases = {
      { "argument wins", { region = "eu-west-1" }, { AWS_REGION = "us-west-2" }, nil, "eu-west-1" },
      { "AWS_REGION before AWS_DEFAULT_REGION", {}, { AWS_REGION = "us-west-2",
        AWS_DEFAULT_REGION = "us-east-2" },
        nil, "us-west-2" },
      { "AWS_DEFAULT_REGION", {}, { AWS_DEFAULT_REGION = "us-east-2" }, nil, "us-east-2" },
      { "the profile's region", {}, {}, "[default]\nregion = ap-southeast-2\n", "ap-southeast-2" },
      { "env before profile", {}, { AWS_REGION = "sa-east-1" }, "[default]\nregion = ap-southeast-2\n",
        "sa-east-1" },
      { "an empty variable counts as unset", {}, { AWS_REGION = "", AWS_DEFAULT_REGION = "ca-central-1" },
        nil,
        "ca-central-1" },
      { "AWS_PROFILE selects the profile", {}, { AWS_PROFILE = "dev" },
        "[default]\nregion = us-east-1\n[profile dev]\nregion = eu-north-1\n", "eu-north-1" },
      { "profile argument over AWS_PROFILE", { profile = "prod" }, { AWS_PROFILE = "dev" },
        "[profile dev]\nregion = eu-north-1\n[profile prod]\nregion = eu-central-1\n", "eu-central-1" },
    }
    for i, c in ipairs(cases) do
      it(c[1], function()
        local e = env(c[3])
        if c[4] then e.AWS_CONFIG_FILE = write("region" .. i, c[4]) end
        local args = { env = e }
        for k, v in pairs(c[2]) do args[k] = v end
        local cfg = assert(config.resolve(args))
        assert.equal(c[5], cfg.region)
        assert.equal("https://emr-containers." .. c[5] .. ".amazonaws.com", cfg.endpoint_url)
      end)
    end

    it("returns nil, err naming every place it looked when there is no region", function()
      local cfg, err = config.resolve { env = env() }
      assert.is_nil(cfg)
      assert.equal("config", err.code)
      for _, s in ipairs { "region=", "AWS_REGION", "AWS_DEFAULT_REGION", "profile 'default'",
        "none-config" } do
        assert.truthy(err.message:find(s, 1, true), err.message)
      end
      assert.truthy(tostring(err):find("no AWS region", 1, true))
    end)

    it("leaves region and endpoint nil with require_region = false", function()
      local cfg = assert(config.resolve { env = env(), require_region = false })
      assert.is_nil(cfg.region)
      assert.is_nil(cfg.endpoint_url)
      assert.is_nil(cfg.sts_endpoint)
    end)

    it("rejects a region that cannot be a host name part", function()
      local cfg, err = config.resolve { env = env { AWS_REGION = "us east 1" } }
      assert.is_nil(cfg)
      assert.truthy(err.message:find("region 'us east 1' is not a valid region name", 1, true))
    end)

    it("maps the legacy fips- pseudo-regions to the real region with FIPS on", function()
      for _, r in ipairs { "fips-us-east-1", "us-east-1-fips" } do
        local cfg = assert(config.resolve { env = env(), region = r })
        assert.equal("us-east-1", cfg.region)
        assert.is_true(cfg.use_fips)
        assert.equal("https://emr-containers-fips.us-east-1.amazonaws.com", cfg.endpoint_url)
      end
    end)
  end)

  describe("the emr-containers endpoint", function()
    -- the host forms botocore resolves (reference A2)
    local cases = {
      { "us-east-1", false, false, "https://emr-containers.us-east-1.amazonaws.com" },
      { "us-east-1", true, false, "https://emr-containers-fips.us-east-1.amazonaws.com" },
      { "us-east-1", false, true, "https://emr-containers.us-east-1.api.aws" },
      { "us-east-1", true, true, "https://emr-containers-fips.us-east-1.api.aws" },
      { "cn-north-1", false, false, "https://emr-containers.cn-north-1.amazonaws.com.cn" },
      { "us-gov-west-1", false, false, "https://emr-containers.us-gov-west-1.amazonaws.com" },
      { "us-gov-west-1", true, false, "https://emr-containers-fips.us-gov-west-1.amazonaws.com" },
    }
    for _, c in ipairs(cases) do
      it(string.format("%s fips=%s dualstack=%s -> %s", c[1], c[2], c[3], c[4]), function()
        local cfg = assert(config.resolve { env = env(), region = c[1], use_fips = c[2],
          use_dualstack = c[3] })
        assert.equal(c[4], cfg.endpoint_url)
        assert.equal(c[2], cfg.use_fips)
        assert.equal(c[3], cfg.use_dualstack)
      end)
    end

    it("reads FIPS and dual-stack from the environment and the profile", function()
      local cfg = assert(config.resolve { env = env { AWS_REGION = "us-west-2",
        AWS_USE_FIPS_ENDPOINT = "TRUE" } })
      assert.equal("https://emr-containers-fips.us-west-2.amazonaws.com", cfg.endpoint_url)
      local e = env { AWS_REGION = "us-west-2" }
      e.AWS_CONFIG_FILE = write("dual", "[default]\nuse_dualstack_endpoint = true\n")
      cfg = assert(config.resolve { env = e })
      assert.equal("https://emr-containers.us-west-2.api.aws", cfg.endpoint_url)
    end)

    local overrides = {
      { "endpoint_url argument first", { endpoint_url = "http://127.0.0.1:9/" },
        { AWS_ENDPOINT_URL_EMR_CONTAINERS = "http://a", AWS_ENDPOINT_URL = "http://b" }, nil,
          "http://127.0.0.1:9" },
      { "AWS_ENDPOINT_URL_EMR_CONTAINERS", {},
        { AWS_ENDPOINT_URL_EMR_CONTAINERS = "http://a:1", AWS_ENDPOINT_URL = "http://b" }, nil,
          "http://a:1" },
      { "AWS_ENDPOINT_URL", {}, { AWS_ENDPOINT_URL = "http://b:2" }, "[default]\nendpoint_url = http://c\n",
        "http://b:2" },
      { "the profile's services section before its endpoint_url", {}, {},
        "[default]\nendpoint_url = http://c\nservices = loc\n[services loc]\nemr_containers =\n" ..
        "  endpoint_url = http://d:4\n", "http://d:4" },
      { "the profile's endpoint_url", {}, {}, "[default]\nendpoint_url = http://c:3\n", "http://c:3" },
      { "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS ignores env and profile", {},
        { AWS_ENDPOINT_URL = "http://b", AWS_IGNORE_CONFIGURED_ENDPOINT_URLS = "true" },
        "[default]\nendpoint_url = http://c\n", "https://emr-containers.us-east-1.amazonaws.com" },
    }
    for i, c in ipairs(overrides) do
      it(c[1], function()
        local e = env(c[3])
        e.AWS_REGION = "us-east-1"
        if c[4] then e.AWS_CONFIG_FILE = write("ep" .. i, c[4]) end
        local args = { env = e }
        for k, v in pairs(c[2]) do args[k] = v end
        assert.equal(c[5], assert(config.resolve(args)).endpoint_url)
      end)
    end
  end)

  describe("config.endpoint_for", function()
    it("gives STS its regional endpoint with variants, and the legacy global one when asked", function()
      local cfg = assert(config.resolve { env = env(), region = "eu-west-1" })
      assert.equal("https://sts.eu-west-1.amazonaws.com", cfg.sts_endpoint)
      assert.equal("https://sts.eu-west-1.amazonaws.com", config.endpoint_for("sts", cfg))
      assert.equal("https://states.eu-west-1.amazonaws.com", config.endpoint_for("states", cfg))
      cfg = assert(config.resolve { env = env { AWS_STS_REGIONAL_ENDPOINTS = "legacy" },
        region = "eu-west-1" })
      assert.equal("https://sts.amazonaws.com", cfg.sts_endpoint)
      cfg = assert(config.resolve { env = env { AWS_STS_REGIONAL_ENDPOINTS = "legacy" },
        region = "ap-east-1" })
      assert.equal("https://sts.ap-east-1.amazonaws.com", cfg.sts_endpoint)
      cfg = assert(config.resolve { env = env(), region = "us-east-2", use_fips = true })
      assert.equal("https://sts-fips.us-east-2.amazonaws.com", cfg.sts_endpoint)
    end)

    it("honours AWS_ENDPOINT_URL_STS, AWS_ENDPOINT_URL and the services section", function()
      local cfg = assert(config.resolve { env = env { AWS_ENDPOINT_URL_STS = "http://127.0.0.1:7/",
        AWS_REGION = "us-east-1" } })
      assert.equal("http://127.0.0.1:7", cfg.sts_endpoint)
      assert.equal("https://emr-containers.us-east-1.amazonaws.com", cfg.endpoint_url)
      local e = env { AWS_REGION = "us-east-1" }
      e.AWS_CONFIG_FILE = write("svc-sts",
        "[default]\nservices = s\n[services s]\nsts =\n  endpoint_url = http://127.0.0.1:8\n")
      cfg = assert(config.resolve { env = e })
      assert.equal("http://127.0.0.1:8", cfg.sts_endpoint)
      assert.equal("http://127.0.0.1:8", config.endpoint_for("sts", cfg))
      assert.equal("https://emr-containers.us-east-1.amazonaws.com", config.endpoint_for("emr-containers",
        cfg))
    end)

    it("works on a hand-made cfg and raises on misuse", function()
      assert.equal("https://sts.us-west-1.amazonaws.com", config.endpoint_for("sts",
        { region = "us-west-1" }))
      assert.has_error(function() config.endpoint_for(nil, {}) end,
        "emrflow.config.endpoint_for: service must be a non-empty string")
      assert.has_error(function() config.endpoint_for("sts") end,
        "emrflow.config.endpoint_for: cfg must be a table from config.resolve")
    end)
  end)

  describe("other settings", function()
    it("has the documented defaults", function()
      local cfg = assert(config.resolve { env = env(), region = "us-east-1" })
      assert.equal(3, cfg.max_attempts)
      assert.equal("standard", cfg.retry_mode)
      assert.is_nil(cfg.ca_bundle)
      assert.is_false(cfg.use_fips)
      assert.is_false(cfg.use_dualstack)
      assert.equal("http://169.254.169.254", cfg.imds_endpoint)
      assert.is_false(cfg.imds_disabled)
      assert.equal("default", cfg.profile)
      assert.equal(tmpdir .. "/none-config", cfg.config_file)
      assert.equal(tmpdir .. "/none-creds", cfg.credentials_file)
    end)

    it("reads each from the environment, then the profile", function()
      local e = env {
        AWS_REGION = "us-east-1", AWS_MAX_ATTEMPTS = "7", AWS_RETRY_MODE = "adaptive",
          AWS_CA_BUNDLE = "/etc/ca.pem",
        AWS_EC2_METADATA_SERVICE_ENDPOINT = "http://127.0.0.1:99/", AWS_EC2_METADATA_DISABLED = "true",
      }
      local cfg = assert(config.resolve { env = e })
      assert.equal(7, cfg.max_attempts)
      assert.equal("adaptive", cfg.retry_mode)
      assert.equal("/etc/ca.pem", cfg.ca_bundle)
      assert.equal("http://127.0.0.1:99", cfg.imds_endpoint)
      assert.is_true(cfg.imds_disabled)
      e = env { AWS_REGION = "us-east-1" }
      e.AWS_CONFIG_FILE = write("others",
        "[default]\nmax_attempts = 5\nretry_mode = legacy\nca_bundle = /p.pem\n" ..
        "ec2_metadata_service_endpoint_mode = IPv6\n")
      cfg = assert(config.resolve { env = e })
      assert.equal(5, cfg.max_attempts)
      assert.equal("legacy", cfg.retry_mode)
      assert.equal("/p.pem", cfg.ca_bundle)
      assert.equal("http://[fd00:ec2::254]", cfg.imds_endpoint)
      cfg = assert(config.resolve { env = e, max_attempts = 2 })
      assert.equal(2, cfg.max_attempts)
    end)

    it("disables IMDS only for AWS_EC2_METADATA_DISABLED=true (any case), as botocore", function()
      for v, want in pairs { ["true"] = true, ["TRUE"] = true, ["1"] = false, ["false"] = false,
        yes = false } do
        local cfg = assert(config.resolve { env = env { AWS_EC2_METADATA_DISABLED = v },
          require_region = false })
        assert.equal(want, cfg.imds_disabled, v)
      end
    end)

    it("uses the credentials file's keys for the same profile too, but keeps no secret", function()
      local e = env()
      e.AWS_SHARED_CREDENTIALS_FILE = write("cred-region", "[default]\nregion = eu-south-1\n" ..
        "aws_access_key_id = AKIDCONFIGSPEC\naws_secret_access_key = SECRETCONFIGSPEC\n")
      local cfg = assert(config.resolve { env = e })
      assert.equal("eu-south-1", cfg.region)
      for _, v in pairs(cfg) do
        assert.falsy(tostring(v):find("SECRETCONFIGSPEC", 1, true))
      end
    end)

    local bad_env = {
      { "AWS_MAX_ATTEMPTS", "zero", "AWS_MAX_ATTEMPTS=zero: must be a whole number >= 1" },
      { "AWS_MAX_ATTEMPTS", "0", "AWS_MAX_ATTEMPTS=0: must be a whole number >= 1" },
      { "AWS_RETRY_MODE", "fast", "AWS_RETRY_MODE=fast: must be one of adaptive, legacy, standard" },
      { "AWS_USE_FIPS_ENDPOINT", "yes", "AWS_USE_FIPS_ENDPOINT=yes: must be true or false" },
      { "AWS_ENDPOINT_URL", "not a url", "AWS_ENDPOINT_URL must be an http(s):// URL" },
      { "AWS_EC2_METADATA_SERVICE_ENDPOINT", "169.254.169.254",
        "AWS_EC2_METADATA_SERVICE_ENDPOINT=169.254.169.254: must be an http:// or https:// URL" },
    }
    for _, c in ipairs(bad_env) do
      it("returns nil, err for " .. c[1] .. "=" .. c[2], function()
        local cfg, err = config.resolve { env = env { AWS_REGION = "us-east-1", [c[1]] = c[2] } }
        assert.is_nil(cfg)
        assert.equal("config", err.code)
        assert.equal(c[3], err.message)
      end)
    end

    it("names file, profile and key for a bad value in the config file", function()
      local e = env { AWS_REGION = "us-east-1" }
      e.AWS_CONFIG_FILE = write("badval", "[default]\nmax_attempts = many\n")
      local _, err = config.resolve { env = e }
      assert.equal(e.AWS_CONFIG_FILE ..
        ", profile 'default', key 'max_attempts': must be a whole number >= 1",
        err.message)
    end)

    it("returns nil, err for an unparsable config file and a named profile that is nowhere", function()
      local e = env { AWS_REGION = "us-east-1" }
      e.AWS_CONFIG_FILE = write("broken", "[default\n")
      local _, err = config.resolve { env = e }
      assert.truthy(err.message:find("broken:1: section header is missing its closing ']'", 1, true),
        err.message)
      _, err = config.resolve { env = env { AWS_REGION = "us-east-1", AWS_PROFILE = "ghost" } }
      assert.truthy(err.message:find("profile 'ghost' (from AWS_PROFILE) is not in", 1, true), err.message)
      _, err = config.resolve { env = env { AWS_REGION = "us-east-1" }, profile = "ghost" }
      assert.truthy(err.message:find("profile 'ghost' (from the profile option)", 1, true), err.message)
    end)

    it("expands ~ in file locations with HOME", function()
      local cfg = assert(config.resolve { env = { HOME = "/home/u", AWS_REGION = "us-east-1" } })
      assert.equal("/home/u/.aws/config", cfg.config_file)
      assert.equal("/home/u/.aws/credentials", cfg.credentials_file)
    end)
  end)

  describe("misuse raises", function()
    local cases = {
      { { region = 42 }, "option 'region' must be a string (got number)" },
      { { max_attempts = 0 }, "option 'max_attempts' must be a whole number >= 1 (got number)" },
      { { use_fips = "yes" }, "option 'use_fips' must be true or false (got 'yes')" },
      { { retry_mode = "fast" },
        "option 'retry_mode' must be one of adaptive, legacy, standard (got 'fast')" },
      { { endpoint_url = "localhost:80" }, "option 'endpoint_url' must be an http:// or https:// URL" },
      { { regoin = "us-east-1" }, "unknown option 'regoin'" },
      { { env = "AWS_REGION=x" }, "option 'env' must be a table, got string" },
      { { profile = "" }, "option 'profile' must be a non-empty string" },
    }
    for _, c in ipairs(cases) do
      it(c[2], function()
        c[1].env = c[1].env or env()
        assert.has_error(function() config.resolve(c[1]) end, "emrflow.config.resolve: " .. c[2])
      end)
    end
    it("rejects a non-table argument", function()
      assert.has_error(function() config.resolve("us-east-1") end,
        "emrflow.config.resolve: expected a table of options, got string")
    end)
  end)
end)
