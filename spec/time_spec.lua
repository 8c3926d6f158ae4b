-- emrflow.time: timestamps exactly as Step Functions (Java's ISO_OFFSET_DATE_TIME) and
-- JSONata (jsonata-js) read and write them. The tables below were generated from Java
-- and from jsonata@2.2.2; the last part checks the recorded AWS Wait cases.
local time = require "emrflow.time"

-- OpenJDK 17 OffsetDateTime.parse(text, DateTimeFormatter.ISO_OFFSET_DATE_TIME):
-- epoch ms and the nanoseconds below the ms, or false where Java refuses the text
local JAVA = {
  { "2016-03-14T01:59:00Z", 1457920740000, 0 },
  { "2016-03-14t01:59:00z", 1457920740000, 0 },
  { "2016-03-14T01:59Z", 1457920740000, 0 },
  { "2016-03-14T01:59:00.Z", 1457920740000, 0 },
  { "2016-03-14T01:59:00.1Z", 1457920740100, 0 },
  { "2016-03-14T01:59:00.12Z", 1457920740120, 0 },
  { "2016-03-14T01:59:00.123Z", 1457920740123, 0 },
  { "2016-03-14T01:59:00.1234Z", 1457920740123, 400000 },
  { "2016-03-05T21:29:29.243167252Z", 1457213369243, 167252 },
  { "2016-03-05T21:29:29.2431672521Z", false },
  { "2016-03-14T01:59:00+01:00", 1457917140000, 0 },
  { "2016-03-14T01:59:00-01:30", 1457926140000, 0 },
  { "2016-03-14T01:59:00+0100", false },
  { "2016-03-14T01:59:00+01", 1457917140000, 0 },
  { "2016-03-14T01:59:00+01:00:30", 1457917110000, 0 },
  { "2016-03-14T01:59:00+18:00", 1457855940000, 0 },
  { "2016-03-14T01:59:00-18:00", 1457985540000, 0 },
  { "2016-03-14T01:59:00+18:01", false },
  { "2016-03-14T01:59:00+19:00", false },
  { "2016-03-14T01:59:00+00:00", 1457920740000, 0 },
  { "2016-03-14T01:59:00-00:00", 1457920740000, 0 },
  { "2016-03-14T01:59:00UTC", false },
  { "2016-03-14T01:59:00GMT", false },
  { "2016-03-14T01:59:00 Z", false },
  { "2016-03-14 01:59:00Z", false },
  { "2016-03-14T01:59:00", false },
  { "2016-13-05T21:29:29Z", false },
  { "2016-12-05T25:29:29Z", false },
  { "2016-12-05T24:00:00Z", false },
  { "2016-12-05T23:59:60Z", false },
  { "2016-12-05T23:60:00Z", false },
  { "2016-02-29T00:00:00Z", 1456704000000, 0 },
  { "2015-02-29T00:00:00Z", false },
  { "2000-02-29T00:00:00Z", 951782400000, 0 },
  { "1900-02-29T00:00:00Z", false },
  { "2016-04-31T00:00:00Z", false },
  { "2016-00-10T00:00:00Z", false },
  { "2016-01-00T00:00:00Z", false },
  { "05-12-2016T21:29:29Z", false },
  { "16-03-14T01:59:00Z", false },
  { "12016-03-14T01:59:00Z", false },
  { "+12016-03-14T01:59:00Z", 317027440740000, 0 },
  { "-0001-03-14T01:59:00Z", -62192527260000, 0 },
  { "0000-01-01T00:00:00Z", -62167219200000, 0 },
  { "1969-12-31T23:59:59.999Z", -1, 0 },
  { "1970-01-01T00:00:00Z", 0, 0 },
  { "9999-12-31T23:59:59.999Z", 253402300799999, 0 },
  { "2016-3-14T01:59:00Z", false },
  { "2016-03-14T1:59:00Z", false },
  { "2016-03-14T01:59:0Z", false },
  { "2016-03-14T01:59:00,123Z", false },
  { " 2016-03-14T01:59:00Z", false },
  { "2016-03-14T01:59:00Z ", false },
  { "2016-03-14T01Z", false },
  { "2016-03-14", false },
  { "2016-03-14T01:59:00.000000Z", 1457920740000, 0 },
  { "2026-11-24T05:28:06.00Z", 1795498086000, 0 },
  { "\239\188\146\239\188\14416-03-14T01:59:00Z", false },
  { "2016-03-14T01:59:00+01:00[Europe/Paris]", false },
  { "2016-03-14T01:59:00.+01:00", 1457917140000, 0 },
  { "2016-03-14T01:59:00+01:0", false },
  { "2016-03-14T01:59:00+1:00", false },
  { "2016-03-14T01:59:00.123456789+05:45", 1457900040123, 456789 },
  { "+2016-03-14T01:59:00Z", false },
  { "-12016-03-14T01:59:00Z", -441349250460000, 0 },
  { "+0002016-03-14T01:59:00Z", 1457920740000, 0 },
  { "-001-03-14T01:59:00Z", false },
  { "2016-03-14T01:59:00-18:00:01", false },
  { "2016-03-14T01:59:00+01:60", false },
  { "2016-03-14T01:59:00+01:00:60", false },
  { "2016-03-14T23:59:59.999999999-12:00", 1458043199999, 999999 },
}

-- jsonata@2.2.2 $toMillis(text) (TZ=UTC): ms, "NaN", or the error code
local JSONATA_TO_MILLIS = {
  { "2018", 1514764800000 },
  { "2018-01", 1514764800000 },
  { "2018-01-01", 1514764800000 },
  { "2018-02-30", 1519948800000 },
  { "2018-02-31", 1520035200000 },
  { "2018-13-01", "NaN" },
  { "2018-00-01", "NaN" },
  { "2018-01-00", "NaN" },
  { "2018-01-32", "NaN" },
  { "2018-01-01T10:00:00", 1514800800000 },
  { "2018-01-01T10:00:00Z", 1514800800000 },
  { "2018-01-01T24:00:00Z", 1514851200000 },
  { "2018-01-01T24:00:01Z", "NaN" },
  { "2018-01-01T29:00:00Z", "NaN" },
  { "2018-01-01T10:00:00.1Z", 1514800800100 },
  { "2018-01-01T10:00:00.123456Z", 1514800800123 },
  { "2018-01-01T10:00:00.1239Z", 1514800800123 },
  { "2018-01-01T10:00:00+0100", 1514797200000 },
  { "2018-01-01T10:00:00+01:00", 1514797200000 },
  { "2018-01-01T10:00:00-2359", 1514887140000 },
  { "2018-01-01T10:00:00+2500", "NaN" },
  { "2018-01-01.5", "NaN" },
  { "2018-01-01T10:00:00.Z", "D3110" },
  { "1969-12-31T23:59:59.9999Z", -1 },
  { "2018-01-01T10:00:00z", "D3110" },
  { "2018-01-01Z", 1514764800000 },
  { "2018Z", 1514764800000 },
  { "2018-01+01:00", "NaN" },
  { "2018-01-01T10:00", "D3110" },
  { "x", "D3110" },
  { "", "D3110" },
  { "2018-01-01T10:00:00.5", 1514800800500 },
  { "0000-01-01T00:00:00Z", -62167219200000 },
  { "1900-02-29", -2203891200000 },
}

-- jsonata@2.2.2 $fromMillis(ms)
local JSONATA_FROM_MILLIS = {
  { 0, "1970-01-01T00:00:00.000Z" },
  { -1, "1969-12-31T23:59:59.999Z" },
  { 1, "1970-01-01T00:00:00.001Z" },
  { 999, "1970-01-01T00:00:00.999Z" },
  { 1000, "1970-01-01T00:00:01.000Z" },
  { -1000, "1969-12-31T23:59:59.000Z" },
  { -1001, "1969-12-31T23:59:58.999Z" },
  { 86399999, "1970-01-01T23:59:59.999Z" },
  { 86400000, "1970-01-02T00:00:00.000Z" },
  { 951782400000, "2000-02-29T00:00:00.000Z" },
  { 951868799999, "2000-02-29T23:59:59.999Z" },
  { 1457920740123, "2016-03-14T01:59:00.123Z" },
  { 4102444800000, "2100-01-01T00:00:00.000Z" },
  { -2203891200000, "1900-03-01T00:00:00.000Z" },
  { -62167219200000, "0000-01-01T00:00:00.000Z" },
  { -62167219200001, "-0001-12-31T23:59:59.999Z" },
  { -62198755200000, "-0001-01-01T00:00:00.000Z" },
  { 253402300799999, "9999-12-31T23:59:59.999Z" },
  { 253402300800000, "0000-01-01T00:00:00.000Z" },
  { 8640000000000000, "5760-09-13T00:00:00.000Z" },
  { -8640000000000000, "-1821-04-20T00:00:00.000Z" },
  { 1.7, "1970-01-01T00:00:00.001Z" },
  { -1.7, "1969-12-31T23:59:59.999Z" },
  { 1514800800123.9, "2018-01-01T10:00:00.123Z" },
  { 93092429079115, "4919-12-25T16:04:39.115Z" },
  { -117111396789551, "-1742-11-21T00:26:50.449Z" },
  { 79490089416503, "4488-12-09T04:23:36.503Z" },
  { 297528648376464, "1398-04-22T14:46:16.464Z" },
  { 107676887512207, "5382-02-22T06:31:52.207Z" },
  { 103874015808105, "5261-08-20T13:16:48.105Z" },
  { -196381187438965, "-4254-12-05T14:09:21.035Z" },
  { 229903239011764, "9255-05-06T02:50:11.764Z" },
  { 124364304542541, "5910-12-13T16:09:02.541Z" },
  { 196520733833313, "8197-06-29T12:43:53.313Z" },
  { 143651604652404, "6522-02-20T07:30:52.404Z" },
  { -97354960441590, "-1116-12-10T11:25:58.410Z" },
  { 176337647438049, "7557-12-01T23:50:38.049Z" },
  { -184673953056336, "-3883-11-30T23:42:23.664Z" },
  { 47922939062118, "3488-08-13T15:31:02.118Z" },
  { -159742784500123, "-3093-12-15T04:18:19.877Z" },
  { -174630957841874, "-3564-03-01T08:35:58.126Z" },
  { 172544109821319, "7437-09-15T07:23:41.319Z" },
  { 222783851623535, "9029-09-27T19:13:43.535Z" },
  { 206392478942871, "8510-04-26T20:09:02.871Z" },
  { -233196830749512, "-5420-04-14T14:34:10.488Z" },
  { -17767506837845, "1406-12-21T13:26:02.155Z" },
  { 138799881935119, "6368-05-24T02:45:35.119Z" },
  { -80391955375672, "-0578-06-25T13:17:04.328Z" },
  { -132409644126893, "-2226-02-07T23:17:53.107Z" },
  { -79046702384949, "-0535-02-09T14:40:15.051Z" },
  { 251234650611877, "9931-04-24T10:56:51.877Z" },
  { 222458767890930, "9019-06-10T06:11:30.930Z" },
  { -48438620567322, "0435-01-15T19:37:12.678Z" },
  { -42806696891785, "0613-07-06T02:51:48.215Z" },
}

describe("emrflow.time", function()
  describe("parse_iso accepts what Step Functions (Java) accepts", function()
    for _, v in ipairs(JAVA) do
      it(("%q"):format(v[1]), function()
        local ms, ns = time.parse_iso(v[1])
        if v[2] == false then
          assert.is_nil(ms)
          assert.matches("ISO%-8601", ns)
        else
          assert.are.same({ v[2], v[3] }, { ms, ns })
          assert.is_true(math.type(ms) == "integer")
        end
      end)
    end

    it("refuses values that are not strings, with a reason", function()
      local ms, why = time.parse_iso(42)
      assert.is_nil(ms)
      assert.matches("must be a string", why)
      assert.is_nil((time.parse_iso("+999999999-12-31T23:59:59Z")))
    end)
  end)

  describe("parse_iso(text, \"jsonata\") reads as $toMillis does", function()
    for _, v in ipairs(JSONATA_TO_MILLIS) do
      it(("%q"):format(v[1]), function()
        local ms, why, kind = time.parse_iso(v[1], "jsonata")
        if v[2] == "D3110" then
          assert.is_nil(ms)
          assert.are.equal("pattern", kind)
        elseif v[2] == "NaN" then
          assert.is_nil(ms)
          assert.are.equal("invalid", kind)
          assert.is_string(why)
        else
          assert.are.equal(v[2], ms)
        end
      end)
    end
  end)

  describe("parse_iso(text, \"lenient\") reads API and credential-file timestamps", function()
    local cases = {
      { "2026-01-02T03:04:05Z", 1767323045000 },
      { " 2026-01-02 03:04:05.5+0100 ", 1767319445500 },
      { "2026-01-02t03:04:05.123456789z", 1767323045123, 456789 },
      { "2026-01-02T03:04", 1767323040000 },
      { "2026-01-02T03:04:05", 1767323045000 },
      { "2026-01-02T03:04:05-05:30", 1767342845000 },
      { "2026-02-30T00:00:00Z", false },
      { "2026-01-02", false },
      { "2026-01-02T03:04:05+25:00", false },
      { "yesterday", false },
    }
    for _, c in ipairs(cases) do
      it(("%q"):format(c[1]), function()
        local ms, ns = time.parse_iso(c[1], "lenient")
        if c[2] == false then
          assert.is_nil(ms)
          assert.is_string(ns)
        else
          assert.are.same({ c[2], c[3] or 0 }, { ms, ns })
        end
      end)
    end

    it("refuses an unknown flavour", function()
      assert.has_error(function() time.parse_iso("2026-01-02T03:04:05Z", "strict-ish") end)
    end)
  end)

  describe("format_iso writes as $fromMillis does", function()
    for _, v in ipairs(JSONATA_FROM_MILLIS) do
      it(tostring(v[1]), function()
        assert.are.equal(v[2], time.format_iso(v[1]))
      end)
    end

    it("refuses what is not a finite ms in the Date range", function()
      assert.is_nil(time.format_iso(1e20))
      assert.is_nil(time.format_iso(0 / 0))
      local s, why = time.format_iso("0")
      assert.is_nil(s)
      assert.matches("must be a number", why)
    end)

    it("writes seconds precision as AWS APIs do", function()
      assert.are.equal("2016-03-14T01:59:00Z", time.format_iso(1457920740999, "seconds"))
      assert.are.equal("1969-12-31T23:59:59Z", time.format_iso(-1, "seconds"))
      assert.are.equal(os.date("!%Y-%m-%dT%H:%M:%SZ", 1767323045), time.format_iso(1767323045000, "seconds"))
    end)

    it("round-trips with parse_iso", function()
      for _, ms in ipairs { 0, -1, 1457920740123, -62167219200000, 253402300799999 } do
        assert.are.equal(ms, time.parse_iso(time.format_iso(ms)))
      end
    end)
  end)

  describe("civil dates", function()
    it("converts both ways over 800 years around the epoch", function()
      local day = time.days_from_civil(1600, 1, 1)
      for y = 1600, 2400 do
        for m = 1, 12 do
          for _, d in ipairs { 1, 28, time.days_in_month(y, m) } do
            local n = time.days_from_civil(y, m, d)
            local y2, m2, d2 = time.civil_from_days(n)
            assert(y2 == y and m2 == m and d2 == d, ("%d-%d-%d"):format(y, m, d))
          end
        end
      end
      assert.are.equal(-135140, day)
      assert.are.equal(0, time.days_from_civil(1970, 1, 1))
      assert.are.equal(11016, time.days_from_civil(2000, 2, 29))
      assert.are.same({ 1969, 12, 31 }, { time.civil_from_days(-1) })
      assert.are.same({ -1, 12, 31 }, { time.civil_from_days(time.days_from_civil(0, 1, 1) - 1) })
    end)

    it("carries days and months past their range on", function()
      assert.are.equal(time.days_from_civil(2018, 3, 2), time.days_from_civil(2018, 2, 30))
      assert.are.equal(time.days_from_civil(2019, 1, 1), time.days_from_civil(2018, 13, 1))
    end)

    it("knows leap years", function()
      assert.is_true(time.is_leap(2000))
      assert.is_false(time.is_leap(1900))
      assert.is_true(time.is_leap(2024))
    end)
  end)

  it("now_ms is the real clock in integer milliseconds", function()
    local ms = time.now_ms()
    assert.is_true(math.type(ms) == "integer")
    assert.is_true(math.abs(ms - os.time() * 1000) < 5000)
  end)

  describe("the recorded AWS Wait cases", function()
    local corpus = require "support.corpus"
    local cases = {}
    for _, group in ipairs { "base", "scenarios" } do
      local files, dir = corpus.files(group)
      for _, f in ipairs(files) do
        if f:match("wait_timestamp") then cases[#cases + 1] = dir .. "/" .. f end
      end
    end
    if #cases == 0 then
      pending("the conformance corpus (../shared/conformance/asl) is absent")
      return
    end
    for _, path in ipairs(cases) do
      it(path:match("[^/]+$"), function()
        local case = corpus.read(path)
        local text
        for _, st in pairs(case.definition.States) do
          if type(st.Timestamp) == "string" and not st.Timestamp:match("^{%%") then text = st.Timestamp end
        end
        text = text or case.input.TimestampValue or case.input.start_at
        assert.is_string(text)
        local refused = case.status == "FAILED" and tostring(case.cause):match("ISO%-8601") ~= nil
        assert.are.equal(refused, time.parse_iso(text) == nil, text)
      end)
    end
  end)
end)
