-- emrflow.json: decode/encode, marks, key order, errors with offsets/paths.
local json = require "emrflow.json"
local cjson = require "cjson"

local null = json.null

-- Deep equality that also checks integer vs float, marks and key order.
local function same(a, b, path)
  path = path or "$"
  if type(a) ~= type(b) then return false, path .. ": " .. type(a) .. " vs " .. type(b) end
  if type(a) == "number" then
    if math.type(a) ~= math.type(b) then
      return false, path .. ": " .. math.type(a) .. " vs " .. math.type(b)
    end
    if a ~= b then return false, path .. ": " .. tostring(a) .. " vs " .. tostring(b) end
    if a == 0 and math.type(a) == "float" and (1 / a) ~= (1 / b) then
      return false, path .. ": signed zero"
    end
    return true
  end
  if type(a) ~= "table" then
    if a ~= b then return false, path .. ": " .. tostring(a) .. " vs " .. tostring(b) end
    return true
  end
  if json.is_array(a) ~= json.is_array(b) then return false, path .. ": array mark differs" end
  if json.is_object(a) ~= json.is_object(b) then return false, path .. ": object mark differs" end
  if json.is_object(a) then
    local ka, kb = json.keys(a), json.keys(b)
    if table.concat(ka, "\0") ~= table.concat(kb, "\0") then return false, path .. ": key order differs" end
  end
  for k, v in pairs(a) do
    local ok, why = same(v, b[k], path .. "." .. tostring(k))
    if not ok then return false, why end
  end
  for k in pairs(b) do
    if a[k] == nil then return false, path .. ": extra key " .. tostring(k) end
  end
  return true
end

local function assert_same(a, b)
  local ok, why = same(a, b)
  assert(ok, why)
end

local function err_of(f, ...)
  local ok, e = pcall(f, ...)
  assert.is_false(ok, "expected an error")
  return tostring(e)
end

describe("emrflow.json", function()
  describe("null", function()
    it("is a light userdata NULL equal to cjson.null", function()
      assert.equal("userdata", type(null))
      assert.equal(cjson.null, null)
      assert.equal(null, json.decode("null"))
      assert.equal("null", json.encode(null))
    end)

    it("keeps arrays free of holes", function()
      local t = json.decode("[null,1,null,null]")
      assert.equal(4, #t)
      assert.equal(null, t[1])
      assert.equal(null, t[4])
      assert.equal("[null,1,null,null]", json.encode(t))
    end)
  end)

  describe("decode", function()
    local cases = {
      { "true", true }, { "false", false }, { " \t\r\n 1 \n", 1 },
      { "0", 0 }, { "-0", 0 }, { "42", 42 }, { "-17", -17 },
      { "9223372036854775807", math.maxinteger },
      { "-9223372036854775808", math.mininteger },
      { "9223372036854775808", 9223372036854775808.0 },
      { "-9223372036854775809", -9223372036854775809.0 },
      { "12345678901234567890", 12345678901234567890.0 },
      { "1.0", 1.0 }, { "-0.0", -0.0 }, { "2.5", 2.5 }, { "1e2", 100.0 }, { "1E2", 100.0 },
      { "1e+2", 100.0 }, { "1e-2", 0.01 }, { "0.1", 0.1 }, { "-1.5e-3", -0.0015 },
      { "1e300", 1e300 }, { "1e-400", 0.0 }, { "4.9406564584124654e-324", 5e-324 },
      { "3.141592653589793", 3.141592653589793 },
      { "123456789012345678901234567890.5", 1.2345678901234568e29 },
      { "0.30000000000000004", 0.1 + 0.2 }, { "9007199254740993", 9007199254740993 },
      { "9007199254740993.0", 9007199254740992.0 },
      { '""', "" }, { '"abc"', "abc" }, { '"a/b"', "a/b" }, { '"a\\/b"', "a/b" },
      { '"\\"\\\\\\b\\f\\n\\r\\t"', "\"\\\b\f\n\r\t" },
      { '"\\u0041\\u00e9\\u20AC"', "A\u{e9}\u{20ac}" },
      { '"\\u0000"', "\0" },
      { '"\\ud83d\\ude00"', "\u{1f600}" }, { '"x\\uD834\\uDD1Ey"', "x\u{1d11e}y" },
      { '"\u{e9}\u{1f600}\u{7f}"', "\u{e9}\u{1f600}\u{7f}" },
      { '"\xef\xbf\xbf\xf4\x8f\xbf\xbf"', "\u{ffff}\u{10ffff}" },
    }
    for _, c in ipairs(cases) do
      it("reads " .. c[1], function()
        assert_same(c[2], json.decode(c[1]))
      end)
    end

    it("keeps integers integers and floats floats", function()
      local t = json.decode('[1, 1.0, 1e0, -0, 10000000000, 2.5]')
      local want = { "integer", "float", "float", "integer", "integer", "float" }
      for i, m in ipairs(want) do assert.equal(m, math.type(t[i]), "element " .. i) end
    end)

    it("marks arrays and objects, also empty ones", function()
      local t = json.decode('{"a":[],"o":{},"l":[1],"m":{"x":1}}')
      assert.is_true(json.is_object(t))
      assert.is_true(json.is_array(t.a))
      assert.is_true(json.is_object(t.o))
      assert.is_true(json.is_array(t.l))
      assert.is_true(json.is_object(t.m))
      assert.is_false(json.is_array(t.o))
      assert.is_false(json.is_object(t.a))
      assert.equal('{"a":[],"o":{},"l":[1],"m":{"x":1}}', json.encode(t))
    end)

    it("records key order, and a duplicate key keeps its first place and last value", function()
      local t = json.decode('{"z":1,"a":2,"m":3,"a":4}')
      assert.same({ "z", "a", "m" }, json.keys(t))
      assert.equal(4, t.a)
      assert.equal('{"z":1,"a":4,"m":3}', json.encode(t))
    end)

    it("handles containers larger than its stack chunk", function()
      local parts, items = {}, {}
      for i = 1, 500 do
        parts[#parts + 1] = string.format('"k%03d":%d', 501 - i, i)
        items[i] = i
      end
      local text = "{" .. table.concat(parts, ",") .. ',"k001":0}'
      local t = json.decode(text)
      local keys = json.keys(t)
      assert.equal(500, #keys)
      assert.equal("k500", keys[1])
      assert.equal("k001", keys[500])
      assert.equal(0, t.k001)
      local arr = json.decode("[" .. table.concat(items, ",") .. "]")
      assert.equal(500, #arr)
      for i = 1, 500 do assert.equal(i, arr[i]) end
    end)

    it("accepts nesting up to max_depth", function()
      local deep = string.rep("[", 1000) .. string.rep("]", 1000)
      assert.equal(deep, json.encode(json.decode(deep)))
      assert.same({ { 1 } }, json.decode("[[1]]", { max_depth = 2 }))
      local deeper = string.rep('{"a":[', 5000) .. string.rep("]}", 5000)
      local opts = { max_depth = 10000 }
      assert.equal(deeper, json.encode(json.decode(deeper, opts), opts))
    end)

    it("keeps keys that are metamethod names as plain data", function()
      local text = '{"__index":1,"__newindex":2,"__gc":3,"__mode":"k","__metatable":4,"__len":5,"__name":"x"}'
      local t = json.decode(text)
      assert.is_nil(t.missing)
      t.other = 1
      assert.equal(5, t.__len)
      assert.equal(0, #t)
      collectgarbage()
      assert.is_true(json.is_object(t))
      t.other = nil
      assert.equal(text, json.encode(t))
    end)

    local errors = {
      { '{\n  "a": 1,\n  "b": x\n}', "expected a JSON value, found 'x' at byte 20", line = 3, column = 8 },
      { '["\u{e9}", ?]', "expected a JSON value, found '?' at byte 8", line = 1, column = 7 },
      { "", "unexpected end of input at byte 1" },
      { "   ", "unexpected end of input at byte 4" },
      { '{"a":1', "unexpected end of input at byte 7" },
      { '{"a":', "unexpected end of input at byte 6" },
      { "[1,2", "unexpected end of input at byte 5" },
      { "[", "unexpected end of input at byte 2" },
      { "{", "unexpected end of input at byte 2" },
      { '"abc', "unexpected end of input (unterminated string) at byte 5" },
      { '"abc\\', "unexpected end of input (unterminated string) at byte 6" },
      { '{"abcdefghijkl":[1,2,', "unexpected end of input at byte 22" },
      { "tru", "unexpected end of input at byte 4" },
      { "-", "unexpected end of input (number) at byte 2" },
      { "[1,2] x", "trailing garbage after the JSON value at byte 7" },
      { "[1,2]]", "trailing garbage after the JSON value at byte 6" },
      { '{"a":1}{"b":2}', "trailing garbage after the JSON value at byte 8" },
      { '{"a" 1}', "expected ':' after the key, found '1' at byte 6" },
      { "[1 2]", "expected ',' or ']', found '2' at byte 4" },
      { '{"a":1 "b":2}', "expected ',' or '}', found '\"' at byte 8" },
      { "{1:2}", "expected a string key, found '1' at byte 2" },
      { '{"a":1,}', "expected a string key, found '}' at byte 8" },
      { "[1,]", "expected a JSON value, found ']' at byte 4" },
      { ".5", "expected a JSON value, found '.' at byte 1" },
      { "+1", "expected a JSON value, found '+' at byte 1" },
      { "NaN", "expected a JSON value, found 'N' at byte 1" },
      { "\0", "expected a JSON value, found byte 0x00 at byte 1" },
      { "trux", "invalid literal (expected true, false or null) at byte 1" },
      { "[nulL]", "invalid literal (expected true, false or null) at byte 2" },
      { "01", "invalid number (leading zero) at byte 1" },
      { "[-01]", "invalid number (leading zero) at byte 2" },
      { "-a", "invalid number (expected a digit) at byte 2" },
      { "1.", "invalid number (expected a digit after '.') at byte 3" },
      { "1.e5", "invalid number (expected a digit after '.') at byte 3" },
      { "1e", "invalid number (expected a digit in the exponent) at byte 3" },
      { "[1e+]", "invalid number (expected a digit in the exponent) at byte 5" },
      { "1e400", "number out of range at byte 1" },
      { '{"x": -1e400}', "number out of range at byte 7" },
      { "[1" .. string.rep("0", 400) .. "]", "number out of range at byte 2" },
      { '"\\x"', "invalid escape in string at byte 2" },
      { '"ab\\u12"', "invalid \\u escape (expected 4 hex digits) at byte 4" },
      { '"\\u12G4"', "invalid \\u escape (expected 4 hex digits) at byte 2" },
      { '"\\ud800"', "lone high surrogate in \\u escape (no low surrogate follows) at byte 2" },
      { '"\\ud800\\u0041"', "lone high surrogate in \\u escape (no low surrogate follows) at byte 2" },
      { '"\\ud800\\ud800"', "lone high surrogate in \\u escape (no low surrogate follows) at byte 2" },
      { '"x\\udc00"', "lone low surrogate in \\u escape at byte 3" },
      { '"\xff"', "invalid UTF-8 in string at byte 2" },
      { '"\xc0\xaf"', "invalid UTF-8 in string at byte 2" },
      { '"\xe0\x80\xaf"', "invalid UTF-8 in string at byte 2" },
      { '"\xed\xa0\x80"', "invalid UTF-8 in string at byte 2" },
      { '"\xf4\x90\x80\x80"', "invalid UTF-8 in string at byte 2" },
      { '"\xf5\x80\x80\x80"', "invalid UTF-8 in string at byte 2" },
      { '"ab\xe2\x82"', "invalid UTF-8 in string at byte 4" },
      { '"\\n\x80"', "invalid UTF-8 in string at byte 4" },
      { '"a\tb"', "control character in string (must be escaped) at byte 3" },
      { '"\\t\n"', "control character in string (must be escaped) at byte 4" },
      { '{"\xff":1}', "invalid UTF-8 in string at byte 3" },
      { '\xef\xbb\xbf{"a":1}',
        "expected a JSON value, found a UTF-8 byte order mark (save the text without BOM) at byte 1" },
      { '[\xef\xbb\xbf]', "expected a JSON value, found byte 0xEF at byte 2" },
      { string.rep("[", 1001) .. string.rep("]", 1001), "nesting deeper than 1000 at byte 1001" },
      { '{"a":' .. string.rep('{"a":', 1000) .. "1" .. string.rep("}", 1001),
        "nesting deeper than 1000 at byte 5001" },
    }
    for _, c in ipairs(errors) do
      it(string.format("rejects %q", #c[1] > 40 and c[1]:sub(1, 40) .. "..." or c[1]), function()
        -- every case but two is on one line, where the column is the byte
        local what, byte = c[2]:match("^(.*) at byte (%d+)$")
        local line, col = 1, tonumber(byte)
        if c.line then line, col = c.line, c.column end
        assert.equal(string.format("emrflow.json: %s at line %d, column %d (byte %s)", what, line, col, byte),
          err_of(json.decode, c[1]))
      end)
    end

    -- Mutated documents: each either decodes (and then round-trips) or raises
    -- an error of the documented shape; never a crash or another message.
    it("answers every mutated document with a value or a located error", function()
      local seeds = {
        '{"a":[1,2.5,-3e2,"x\\u00e9\\ud83d\\ude00",null,true,false,{}],"b":{"c":"d\\n","e":[]}}',
        '[0,-0.0,1E+2,"\\/\\b\\f\\r\\t\\"\\\\",{"k":{"k":[[]]}}]',
        '"caf\u{e9} \u{20ac} \u{1f600}"',
        '{"n":12345678901234567890,"m":-9223372036854775808,"f":0.000123}',
      }
      local alphabet = '{}[],:"\\0123456789.eE+-tfnul \t\n\xc3\xa9\xed\xa0\x80\xff'
      local seed = 4242
      local function rand(n)
        seed = (seed * 1103515245 + 12345) % 2147483648
        return seed % n + 1
      end
      local decoded = 0
      for _ = 1, 5000 do
        local s = seeds[rand(#seeds)]
        for _ = 1, rand(2) do
          local pos, k = rand(#s + 1) - 1, rand(#alphabet)
          local c = alphabet:sub(k, k)
          local op = rand(3)
          if op == 1 then s = s:sub(1, pos) .. c .. s:sub(pos + 1)
          elseif op == 2 then s = s:sub(1, pos) .. s:sub(pos + 2)
          else s = s:sub(1, pos) .. c .. s:sub(pos + 2) end
        end
        local ok, v = pcall(json.decode, s)
        if ok then
          decoded = decoded + 1
          local text = json.encode(v)
          assert.equal(text, json.encode(json.decode(text)))
        else
          local at = tostring(v):match("^emrflow%.json: .+ at line %d+, column %d+ %(byte (%d+)%)$")
          assert(at, tostring(v))
          assert(tonumber(at) >= 1 and tonumber(at) <= #s + 1, tostring(v))
        end
      end
      assert.is_true(decoded > 100)
    end)

    it("honours max_depth", function()
      assert.equal("emrflow.json: nesting deeper than 1 at line 1, column 2 (byte 2)",
        err_of(json.decode, "[[1]]", { max_depth = 1 }))
      assert.equal("emrflow.json: nesting deeper than 2 at line 1, column 11 (byte 11)",
        err_of(json.decode, '{"a":{"b":[]}}', { max_depth = 2 }))
    end)

    it("checks its arguments", function()
      assert.matches("string expected, got number", err_of(json.decode, 12))
      assert.matches("string expected, got no value", err_of(json.decode))
      assert.matches("max_depth must be an integer from 1 to", err_of(json.decode, "1", { max_depth = 0 }))
      assert.matches("max_depth must be an integer from 1 to", err_of(json.decode, "1", { max_depth = "x" }))
      assert.matches("max_depth must be an integer from 1 to", err_of(json.decode, "1", { max_depth = 1.5 }))
      assert.matches("table expected", err_of(json.decode, "1", 5))
    end)
  end)

  describe("encode", function()
    local cases = {
      { true, "true" }, { false, "false" }, { 0, "0" }, { -17, "-17" },
      { math.maxinteger, "9223372036854775807" }, { math.mininteger, "-9223372036854775808" },
      { 2.0, "2.0" }, { -0.0, "-0.0" }, { 0.0, "0.0" }, { 0.1, "0.1" }, { -2.5, "-2.5" },
      { 1 / 3, "0.3333333333333333" }, { 0.1 + 0.2, "0.30000000000000004" },
      { 1e300, "1e+300" }, { 1e15, "1e+15" }, { 123456789.0, "123456789.0" },
      { 2.0 ^ 53, "9007199254740992.0" }, { 1e-7, "1e-07" }, { 5e-324, "4.94065645841247e-324" },
      { "", '""' }, { "abc", '"abc"' }, { "a/b", '"a/b"' },
      { "\"\\", '"\\"\\\\"' }, { "\b\f\n\r\t", '"\\b\\f\\n\\r\\t"' },
      { "\0\1\31 \127", '"\\u0000\\u0001\\u001f \127"' },
      { "\u{e9}\u{20ac}\u{1f600}", '"\u{e9}\u{20ac}\u{1f600}"' },
      { {}, "{}" }, { { 1, 2, 3 }, "[1,2,3]" }, { { null, null }, "[null,null]" },
      { { b = 1, a = 2, ["B"] = 3, ["\u{e9}"] = 4, aa = 5 }, '{"B":3,"a":2,"aa":5,"b":1,"\u{e9}":4}' },
      { { x = { y = { 1, {} } } }, '{"x":{"y":[1,{}]}}' },
    }
    for _, c in ipairs(cases) do
      it("writes " .. c[2], function()
        assert.equal(c[2], json.encode(c[1]))
      end)
    end

    it("writes integers as LUA_INTEGER_FMT does", function()
      for _, v in ipairs({ 1, -1, 9, 10, 99, 100, 4294967296, -4294967297, math.maxinteger - 1 }) do
        assert.equal(string.format("%d", v), json.encode(v))
      end
    end)

    it("writes floats that read back exactly and stay floats", function()
      local values = { 1e-300, 1.7976931348623157e308, 2.2250738585072014e-308, 123.456, 1e21, 1e22,
        -1e-10, 0.5, 100.25, 33333.333333333336, 9007199254740993.0, 4.35, 1.1 }
      for _, v in ipairs(values) do
        local text = json.encode(v)
        local back = json.decode(text)
        assert.equal("float", math.type(back), text)
        assert.equal(v, back, text)
        assert.is_true(#text <= 24, text)
      end
    end)

    it("writes arrays marked with json.array, empty or not", function()
      assert.equal("[]", json.encode(json.array({})))
      assert.equal("[]", json.encode(json.array()))
      assert.equal('[1,"a"]', json.encode(json.array({ 1, "a" })))
      assert.equal("{}", json.encode(json.object()))
      assert.equal('{"a":[],"b":{}}', json.encode({ a = json.array(), b = json.object() }))
    end)

    local errors = {
      { print, "cannot encode a function at $" },
      { { a = { 1, 2, { b = print } } }, "cannot encode a function at $.a[2].b" },
      { { co = coroutine.create(print) }, "cannot encode a thread at $.co" },
      { { io.stdout }, "cannot encode a userdata at $[0]" },
      { nil, "cannot encode nil (use json.null) at $" },
      { { 0 / 0 }, "cannot encode NaN at $[0]" },
      { { x = math.huge }, "cannot encode an infinite number at $.x" },
      { { x = { -math.huge } }, "cannot encode an infinite number at $.x[0]" },
      { { ["a b"] = { ['q"'] = print } }, 'cannot encode a function at $["a b"]["q\\""]' },
      { { 1, 2, x = 1 },
        "cannot encode a table with mixed or non-string keys (integer and string keys) at $" },
      { { a = { [true] = 1 } }, "cannot encode a table with mixed or non-string keys (boolean) at $.a" },
      { { [1.5] = 1 }, "cannot encode a table with mixed or non-string keys (number) at $" },
      { { [0] = 1 }, "cannot encode a table with mixed or non-string keys (number) at $" },
      { { [{}] = 1 }, "cannot encode a table with mixed or non-string keys (table) at $" },
      { { l = { 1, nil, 3 } }, "cannot encode a sparse array (2 elements, largest index 3) at $.l" },
      { { [2] = "x" }, "cannot encode a sparse array (1 elements, largest index 2) at $" },
      { json.array({ a = 1 }), "cannot encode an array (json.array) with a non-integer key at $" },
      { json.array({ 1, [3] = 3 }), "cannot encode a sparse array (2 elements, largest index 3) at $" },
      { { "ok", "\xff" }, "invalid UTF-8 in string (byte 1) at $[1]" },
      { { s = "abc\xed\xa0\x80" }, "invalid UTF-8 in string (byte 4) at $.s" },
      { { "\xc3" }, "invalid UTF-8 in string (byte 1) at $[0]" },
      { { ["k\xff"] = 1 }, 'invalid UTF-8 in key (byte 2) at $["k\\xFF"]' },
    }
    for i, c in ipairs(errors) do
      it("refuses case " .. i .. ": " .. c[2], function()
        assert.equal("emrflow.json: " .. c[2], err_of(json.encode, c[1]))
      end)
    end

    it("refuses an object with a non-string key", function()
      local o = json.decode('{"a":1}')
      o[1] = 2
      assert.equal("emrflow.json: cannot encode an object with a non-string key at $",
        err_of(json.encode, { o }):gsub("%$%[0%]", "$"))
    end)

    it("refuses cycles, naming where the cycle closes", function()
      local t = { a = { b = {} } }
      t.a.b.c = t.a
      assert.equal("emrflow.json: cycle (a table that contains itself) at $.a.b.c", err_of(json.encode, t))
      local arr = json.array({})
      arr[1] = arr
      assert.equal("emrflow.json: cycle (a table that contains itself) at $[0]", err_of(json.encode, arr))
    end)

    it("allows the same table twice when it is not a cycle", function()
      local shared = { 1 }
      assert.equal('{"a":[1],"b":[1]}', json.encode({ a = shared, b = shared }))
    end)

    it("refuses nesting deeper than max_depth (default 1000)", function()
      local t = {}
      local cur = t
      for _ = 1, 1000 do
        cur[1] = {}
        cur = cur[1]
      end
      local e = err_of(json.encode, t)
      assert.equal("emrflow.json: nesting deeper than 1000 at $" .. string.rep("[0]", 1000), e)
      assert.equal(2 * 1000, #json.encode(t[1]))
      assert.equal("emrflow.json: nesting deeper than 2 at $.a.b",
        err_of(json.encode, { a = { b = {} } }, { max_depth = 2 }))
      assert.equal('{"a":{}}', json.encode({ a = {} }, { max_depth = 2 }))
    end)

    it("ignores foreign metatables and metamethods", function()
      local t = setmetatable({ a = 1 }, { __index = function() return 9 end, __pairs = error })
      assert.equal('{"a":1}', json.encode(t))
    end)

    it("can be called again after an error", function()
      for _ = 1, 3 do
        assert.is_false(pcall(json.encode, { 1, print }))
        assert.equal("[1,2]", json.encode({ 1, 2 }))
      end
    end)

    it("stays correct when a finalizer encodes while it is encoding", function()
      local big = {}
      for i = 1, 3000 do big[i] = { n = i, s = string.rep("x", i % 50) } end
      local want = json.encode(big)
      local inner = 0
      collectgarbage("incremental")
      for _ = 1, 5 do
        for _ = 1, 2000 do
          setmetatable({}, { __gc = function()
            if json.encode({ a = { 1, 2 } }) == '{"a":[1,2]}' then inner = inner + 1 end
          end })
        end
        assert.equal(want, json.encode(big))
      end
      collectgarbage()
      assert.is_true(inner > 0)
    end)

    it("writes a long document", function()
      local t = {}
      for i = 1, 20000 do t[i] = { id = i, name = "item " .. i, tags = { "x", "y" }, v = i / 7 } end
      local text = json.encode(t)
      assert.equal(20000, #json.decode(text))
      assert.equal(text, json.encode(json.decode(text)))
    end)
  end)

  describe("key order", function()
    it("survives decode -> encode, nested", function()
      local text = '{"zeta":1,"alpha":{"y":[{"b":1,"a":2}],"x":null},"mid":"s","Z":[],"_":{}}'
      assert.equal(text, json.encode(json.decode(text)))
    end)

    it("json.set appends new keys and keeps the place of existing ones", function()
      local o = json.object()
      json.set(o, "z", 1)
      json.set(o, "a", 2)
      json.set(o, "m", 3)
      json.set(o, "z", 10)
      assert.same({ "z", "a", "m" }, json.keys(o))
      assert.equal('{"z":10,"a":2,"m":3}', json.encode(o))
    end)

    it("json.set with nil deletes, and a re-added key goes last", function()
      local o = json.decode('{"a":1,"b":2,"c":3}')
      assert.equal(o, json.set(o, "a", nil))
      assert.is_nil(o.a)
      assert.same({ "b", "c" }, json.keys(o))
      json.set(o, "a", 4)
      assert.same({ "b", "c", "a" }, json.keys(o))
      json.set(o, "nope", nil)
      assert.same({ "b", "c", "a" }, json.keys(o))
    end)

    it("lists keys set without json.set after the recorded ones, sorted bytewise", function()
      local o = json.decode('{"b":1,"a":2}')
      o.d, o.C, o.aa = 1, 2, 3
      assert.same({ "b", "a", "C", "aa", "d" }, json.keys(o))
      assert.equal('{"b":1,"a":2,"C":2,"aa":3,"d":1}', json.encode(o))
      o.a = nil
      assert.same({ "b", "C", "aa", "d" }, json.keys(o))
      json.set(o, "a", 5) -- removed by plain assignment: new again, so last
      assert.same({ "b", "a", "C", "aa", "d" }, json.keys(o))
      json.set(o, "d", 6) -- present but unrecorded: now recorded
      assert.same({ "b", "a", "d", "C", "aa" }, json.keys(o))
    end)

    it("json.set marks a plain table as an object", function()
      local t = { y = 1, x = 2 }
      json.set(t, "a", 3)
      assert.is_true(json.is_object(t))
      assert.same({ "a", "x", "y" }, json.keys(t))
    end)

    it("json.set keeps order for large objects (indexed) like a model list", function()
      local o, model = json.object(), {}
      local function model_set(k, v)
        local pos
        for i, key in ipairs(model) do if key == k then pos = i end end
        if v == nil then
          if pos then table.remove(model, pos) end
        elseif not pos then
          model[#model + 1] = k
        end
      end
      local seed = 12345
      local function rand(n)
        seed = (seed * 1103515245 + 12345) % 2147483648
        return seed % n + 1
      end
      for _ = 1, 3000 do
        local k = "k" .. rand(60)
        local v = rand(4) == 1 and nil or rand(100)
        json.set(o, k, v)
        model_set(k, v)
      end
      assert.same(model, json.keys(o))
      local n = 0
      for _ in pairs(o) do n = n + 1 end
      assert.equal(#model, n)
    end)

    it("json.keys of a plain table sorts its string keys", function()
      assert.same({ "A", "a", "b" }, json.keys({ b = 1, a = 2, A = 3 }))
      assert.same({}, json.keys({}))
    end)

    it("json.keys and json.set refuse what is not an object", function()
      assert.matches("expected a JSON object, got an array", err_of(json.keys, json.array({ 1 })))
      assert.matches("table has a non%-string key", err_of(json.keys, { 1, 2 }))
      assert.matches("table expected", err_of(json.keys, "x"))
      assert.matches("expected a JSON object, got an array", err_of(json.set, json.array(), "a", 1))
      assert.matches("string expected", err_of(json.set, {}, 1, 1))
      assert.matches("metatable of its own", err_of(json.set, setmetatable({}, {}), "a", 1))
    end)

    it("States.JsonToString-style output keeps the input order", function()
      local input = json.decode('{"jobRunId":"j-1","state":"RUNNING","arn":"arn:x","name":"n"}')
      assert.equal('{"jobRunId":"j-1","state":"RUNNING","arn":"arn:x","name":"n"}', json.encode(input))
    end)
  end)

  describe("array / object / is_array / is_object", function()
    it("mark in place and return the table", function()
      local t = {}
      assert.equal(t, json.array(t))
      assert.is_true(json.is_array(t))
      assert.equal(t, json.object(t))
      assert.is_true(json.is_object(t))
      assert.is_false(json.is_array(t))
    end)

    it("json.object keeps existing keys in sorted order", function()
      local t = json.object({ b = 1, a = 2 })
      assert.same({ "a", "b" }, json.keys(t))
      json.set(t, "c", 3)
      assert.same({ "c", "a", "b" }, json.keys(t))
    end)

    it("answer false for anything unmarked", function()
      for _, v in ipairs({ {}, { 1 }, "x", 1, true, null }) do
        assert.is_false(json.is_array(v))
        assert.is_false(json.is_object(v))
      end
      assert.is_false(json.is_object())
    end)

    it("refuse tables with a metatable of their own", function()
      assert.matches("metatable of its own", err_of(json.array, setmetatable({}, {})))
      assert.matches("metatable of its own", err_of(json.object, setmetatable({}, {})))
      assert.matches("table expected", err_of(json.array, 1))
    end)
  end)

  describe("copy", function()
    it("copies deeply, keeping marks and key order", function()
      local src = json.decode('{"z":[1,{"q":null,"b":2.0}],"a":{},"e":[]}')
      src.extra = true
      local c = json.copy(src)
      assert_same(src, c)
      assert.are_not.equal(src, c)
      assert.are_not.equal(src.z, c.z)
      assert.are_not.equal(src.z[2], c.z[2])
      assert.equal(json.encode(src), json.encode(c))
      json.set(c.z[2], "new", 1)
      assert.is_nil(src.z[2].new)
      assert.same({ "z", "a", "e", "extra" }, json.keys(c))
    end)

    it("copies plain tables as plain tables, and passes scalars through", function()
      local c = json.copy({ 1, { a = 1 } })
      assert.same({ 1, { a = 1 } }, c)
      assert.is_false(json.is_array(c))
      assert.equal(5, json.copy(5))
      assert.equal(null, json.copy(null))
    end)

    it("refuses cycles", function()
      local t = {}
      t[1] = t
      assert.matches("nesting deeper than", err_of(json.copy, t))
    end)
  end)

  describe("copy_shallow", function()
    it("copies an object's members and key order, sharing the values", function()
      local o = json.decode('{"b":1,"a":{"x":[1,2]},"c":null}')
      local c = json.copy_shallow(o)
      assert.is_true(c ~= o)
      assert.is_true(json.is_object(c))
      assert.equal('{"b":1,"a":{"x":[1,2]},"c":null}', json.encode(c))
      assert.is_true(rawequal(c.a, o.a))
    end)

    local cases = {
      { what = "replaces an existing key in place", key = "a", value = 5, want = '{"b":1,"a":5,"c":2}' },
      { what = "appends a new key", key = "z", value = true, want = '{"b":1,"a":3,"c":2,"z":true}' },
      { what = "deletes with nil", key = "a", value = nil, want = '{"b":1,"c":2}' },
      { what = "deletes a missing key as a no-op", key = "q", value = nil, want = '{"b":1,"a":3,"c":2}' },
    }
    for _, case in ipairs(cases) do
      it("with a key " .. case.what .. ", leaving the original alone", function()
        local o = json.decode('{"b":1,"a":3,"c":2}')
        local c = json.copy_shallow(o, case.key, case.value)
        assert.equal(case.want, json.encode(c))
        assert.equal('{"b":1,"a":3,"c":2}', json.encode(o))
        assert.same(json.keys(json.decode(case.want)), json.keys(c))
      end)
    end

    it("keeps copies independent when either one is changed with json.set", function()
      local o = json.decode('{"x":1,"y":2}')
      local c1 = json.copy_shallow(o, "x", 5) -- same keys: shares o's order
      local c2 = json.copy_shallow(o)
      json.set(c1, "z", 1)
      json.set(c2, "x", nil)
      json.set(o, "w", 0)
      assert.equal('{"x":1,"y":2,"w":0}', json.encode(o))
      assert.equal('{"x":5,"y":2,"z":1}', json.encode(c1))
      assert.equal('{"y":2}', json.encode(c2))
      json.set(c2, "x", 9)
      assert.equal('{"y":2,"x":9}', json.encode(c2))
    end)

    it("keeps the order of large (indexed) objects through copies and changes", function()
      local o = json.object()
      for i = 1, 40 do json.set(o, "k" .. i, i) end
      json.set(o, "k3", 33) -- builds the index
      local c = json.copy_shallow(o, "k10", 100)
      json.set(c, "k41", 41)
      json.set(c, "k1", nil)
      local keys = json.keys(c)
      assert.equal(40, #keys)
      assert.equal("k2", keys[1])
      assert.equal("k41", keys[40])
      assert.equal(100, c.k10)
      assert.equal(40, #json.keys(o))
      assert.equal(10, o.k10)
    end)

    it("copies arrays (marked) and plain tables, and passes scalars through", function()
      local a = json.decode("[1,[2],3]")
      local ca = json.copy_shallow(a)
      assert.is_true(json.is_array(ca))
      assert.equal("[1,[2],3]", json.encode(ca))
      assert.is_true(rawequal(ca[2], a[2]))
      local p = { b = 2, a = 1 }
      local cp = json.copy_shallow(p)
      assert.is_false(json.is_object(cp))
      assert.same(p, cp)
      local cpk = json.copy_shallow(p, "c", 3)
      assert.equal('{"c":3,"a":1,"b":2}', json.encode(cpk))
      assert.equal(5, json.copy_shallow(5))
      assert.equal("s", json.copy_shallow("s"))
      assert.equal(null, json.copy_shallow(null))
    end)

    it("refuses a key on an array or a scalar, and tables with a foreign metatable", function()
      assert.matches("expected a JSON object, got an array",
        err_of(json.copy_shallow, json.array { 1 }, "k", 1))
      assert.matches("expected a JSON object", err_of(json.copy_shallow, 5, "k", 1))
      assert.matches("metatable of its own", err_of(json.copy_shallow, setmetatable({}, {})))
    end)
  end)

  describe("object_of / keyset / object_from", function()
    it("object_of makes an object in argument order, leaving out nil values", function()
      local o = json.object_of("b", 1, "a", null, "skip", nil, "c", json.array {})
      assert.equal('{"b":1,"a":null,"c":[]}', json.encode(o))
      assert.same({ "b", "a", "c" }, json.keys(o))
      assert.equal('{"k":3}', json.encode(json.object_of("k", 1, "k", 3)))
      assert.equal("{}", json.encode(json.object_of()))
    end)

    it("object_of refuses odd argument counts and non-string keys", function()
      assert.matches("key/value pairs", err_of(json.object_of, "a"))
      assert.matches("string expected", err_of(json.object_of, 1, 2))
    end)

    it("object_from fills a keyset's keys in order; objects of one keyset stay independent", function()
      local ks = json.keyset("value", "step", "label")
      local o1 = json.object_from(ks, 42, 1, "x")
      local o2 = json.object_from(ks, 43, 2, "y")
      assert.equal('{"value":42,"step":1,"label":"x"}', json.encode(o1))
      json.set(o1, "extra", true)
      json.set(o2, "step", nil)
      assert.equal('{"value":42,"step":1,"label":"x","extra":true}', json.encode(o1))
      assert.equal('{"value":43,"label":"y"}', json.encode(o2))
      assert.equal('{"value":44,"step":3,"label":"z"}', json.encode(json.object_from(ks, 44, 3, "z")))
      assert.is_true(json.is_object(json.object_from(ks)))
      assert.equal("{}", json.encode(json.object_from(ks)))
    end)

    it("object_from leaves out keys whose value is nil", function()
      local ks = json.keyset("a", "b", "c")
      local o = json.object_from(ks, 1, nil, 3)
      assert.equal('{"a":1,"c":3}', json.encode(o))
      assert.same({ "a", "c" }, json.keys(o))
    end)

    it("keyset refuses duplicates and non-strings; object_from refuses what is not a keyset", function()
      assert.matches("given twice", err_of(json.keyset, "a", "b", "a"))
      assert.matches("string expected", err_of(json.keyset, "a", 1))
      assert.matches("expected a keyset", err_of(json.object_from, {}, 1))
      assert.matches("expected a keyset", err_of(json.object_from, json.object {}, 1))
      assert.matches("2 values for 1 keys", err_of(json.object_from, json.keyset("a"), 1, 2))
    end)
  end)

  describe("size", function()
    local texts = {
      '0', '-12345', '9223372036854775807', '1.5', '-0.0', '1e+300', '2.0', 'true', 'false', 'null',
      '""', '"plain"', '"quote \\" and \\\\ back"', '"\\u0001\\t\\n"', '"caf\u{e9} \u{20ac} \u{1f600}"',
      '[]', '{}', '[1,[2,[3,{}]]]', '{"a":{"b":{"c":[]}},"d":"e"}', '{"k\\"ey":1}',
    }
    for _, text in ipairs(texts) do
      it("is the length of json.encode for " .. text, function()
        local v = json.decode(text)
        assert.equal(#json.encode(v), json.size(v))
      end)
    end

    it("counts plain tables as encode writes them", function()
      for _, v in ipairs { { 1, 2, 3 }, { a = 1, bb = "x" }, {}, { { x = { 1 } } } } do
        assert.equal(#json.encode(v), json.size(v))
      end
    end)

    it("stops past the limit with a number above it", function()
      local big = json.array {}
      for i = 1, 10000 do big[i] = "item" .. i end
      local n = json.size(big, 100)
      assert.is_true(n > 100)
      assert.is_true(n < #json.encode(big))
      assert.equal(#json.encode(big), json.size(big, #json.encode(big)))
    end)

    it("answers nil for what cannot be encoded", function()
      assert.is_nil(json.size(print))
      assert.is_nil(json.size({ a = print }))
      local deep = json.array {}
      local cur = deep
      for _ = 1, 1100 do
        local nxt = json.array {}
        cur[1] = nxt
        cur = nxt
      end
      assert.is_nil(json.size(deep))
    end)
  end)

  describe("round trips", function()
    it("lua-cjson reads what we write and we read what it writes", function()
      local text = '{"a":[1,2.5,"x\u{e9}",null,true],"b":{"c":"d"}}'
      local v = json.decode(text)
      local back = cjson.decode(json.encode(v))
      assert.equal("x\u{e9}", back.a[3])
      assert.equal(cjson.null, back.a[4])
      assert.same({ c = "d" }, json.decode(cjson.encode({ c = "d" })))
    end)

    -- Property-like: generated values survive encode -> decode -> encode.
    it("holds for generated values", function()
      local seed = 987654321
      local function rand(n)
        seed = (seed * 6364136223846793005 + 1442695040888963407) & 0x7fffffffffffffff
        return (seed >> 20) % n + 1
      end
      local pieces = { "a", "Z", " ", "\"", "\\", "/", "\n", "\t", "\0", "\31", "\127",
        "\u{e9}", "\u{20ac}", "\u{1f600}", "\u{ffff}", "\u{10ffff}", "key", "0" }
      local function rstring()
        local t = {}
        for i = 1, rand(8) - 1 do t[i] = pieces[rand(#pieces)] end
        return table.concat(t)
      end
      local function rfloat()
        while true do
          local bits = (rand(1 << 30) << 34) ~ (rand(1 << 30) << 4) ~ rand(16)
          local x = string.unpack("<d", string.pack("<i8", bits))
          if x == x and x ~= math.huge and x ~= -math.huge then return x end
        end
      end
      local gen
      local function rvalue(depth)
        local r = rand(depth > 4 and 7 or 9)
        if r == 1 then return null
        elseif r == 2 then return rand(2) == 1
        elseif r == 3 then return rand(2000000) - 1000000
        elseif r == 4 then return ({ math.maxinteger, math.mininteger, 0, -1 })[rand(4)]
        elseif r == 5 then return rand(3) == 1 and rfloat() or (rand(1000000) - 500000) / 64
        elseif r == 6 or r == 7 then return rstring()
        else return gen(depth + 1) end
      end
      gen = function(depth)
        if rand(2) == 1 then
          local a = json.array()
          for i = 1, rand(6) - 1 do a[i] = rvalue(depth) end
          return a
        end
        local o = json.object()
        for _ = 1, rand(6) - 1 do json.set(o, rstring(), rvalue(depth)) end
        return o
      end
      for _ = 1, 300 do
        local v = gen(0)
        local text = json.encode(v)
        local back = json.decode(text)
        assert_same(v, back)
        assert.equal(text, json.encode(back))
        assert.equal(text, json.encode(json.copy(back)))
        assert.equal(#text, json.size(back))
        assert.equal(text, json.encode(json.copy_shallow(back)))
      end
    end)
  end)
end)
