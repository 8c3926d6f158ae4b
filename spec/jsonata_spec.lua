-- emrflow.jsonata: the library interface (compile once, evaluate many; values; errors; limits).
local json = require "emrflow.json"
local jsonata = require "emrflow.jsonata"

local function eval(text, input, bindings, opts)
  return jsonata.evaluate(text, input, bindings, opts)
end

local function err(text, input, bindings, opts)
  local ok, e = pcall(jsonata.evaluate, text, input, bindings, opts)
  assert.is_false(ok, "expected an error from " .. text)
  return e
end

describe("emrflow.jsonata", function()
  describe("values", function()
    it("returns nil for undefined and json.null for null", function()
      assert.is_nil(eval("a", json.decode('{"b":1}')))
      assert.are.equal(json.null, eval("a", json.decode('{"a":null}')))
      assert.is_nil(eval("$x"))
    end)

    it("returns arrays and objects that emrflow.json encodes, in JSONata's key order", function()
      local doc = json.decode('{"items":[{"n":"b","p":2},{"n":"a","p":1}]}')
      assert.are.equal('{"z":3,"a":[1,2],"m":{}}', json.encode(eval('{"z": 3, "a": [1, 2], "m": {}}')))
      assert.are.equal('[{"name":"b","price":2},{"name":"a","price":1}]',
        json.encode(eval("items.{ 'name': n, 'price': p }", doc)))
      assert.are.equal('{"b":2,"a":1}', json.encode(eval("items{ n: p }", doc)))
      assert.are.equal('["a","b"]', json.encode(eval("items^(n).n", doc)))
    end)

    it("keeps the input's key order through transforms and $merge", function()
      local doc = json.decode('{"z":1,"y":2,"x":3}')
      assert.are.equal('{"z":1,"y":20,"x":3,"w":4}', json.encode(eval("$ ~> |$|{'y': 20, 'w': 4}|", doc)))
      assert.are.equal('{"z":1,"y":2,"x":3,"a":0}', json.encode(eval("$merge([$, {'a': 0}])", doc)))
    end)

    it("prints integral results as integers and keeps fractions", function()
      assert.are.equal("6", json.encode(eval("1.5 * 4")))
      assert.are.equal("0.5", json.encode(eval("1 / 2")))
      assert.are.equal(0.30000000000000004, eval("0.1 + 0.2"))
      assert.are.equal('"0.3"', json.encode(eval("$string(0.1 + 0.2)")))
      assert.are.equal('"1e+21"', json.encode(eval("$string(1e21)")))
    end)

    it("does not modify the input", function()
      local doc = json.decode('{"a":[3,1,2],"o":{"k":1}}')
      eval("$ ~> |o|{'k': 2}|", doc)
      eval("$sort(a)", doc)
      assert.are.equal('{"a":[3,1,2],"o":{"k":1}}', json.encode(doc))
    end)
  end)

  describe("compile once, evaluate many", function()
    it("evaluates one compiled expression against many inputs and bindings", function()
      local expr = jsonata.compile("$sum(items.(price * qty)) * $rate")
      for i = 1, 5 do
        local doc = json.decode(string.format('{"items":[{"price":%d,"qty":2},{"price":1,"qty":1}]}', i))
        assert.are.equal((2 * i + 1) * 3, expr:evaluate(doc, { rate = 3 }))
      end
    end)

    it("takes Lua functions as bindings", function()
      local r = eval("$twice(21) + $count(xs)", json.decode('{"xs":[1,2]}'),
        { twice = function(x) return x * 2 end })
      assert.are.equal(44, r)
    end)

    it("lets a host add and remove functions and resolve variables", function()
      local env = jsonata.environment {
        double = jsonata.native("double", "<n:n>", function(args) return args[1] * 2 end),
        eval = false,
      }
      local expr = jsonata.compile("$double($x) + $count($ys)")
      local vars = { x = 20, ys = json.decode("[1,2]") }
      assert.are.equal(42, expr:evaluate_in(env, function(name) return vars[name] end))
      local ok, e = pcall(jsonata.compile("$eval('1')").evaluate_in, jsonata.compile("$eval('1')"), env)
      assert.is_false(ok)
      assert.are.equal("T1006", e.code)
      ok, e = pcall(jsonata.compile("$double('a')").evaluate_in, jsonata.compile("$double('a')"), env)
      assert.is_false(ok)
      assert.are.equal("T0410", e.code)
    end)

    it("gives $now and $millis one value per evaluation", function()
      local r = eval("[$millis(), $millis(), $now() = $now()]")
      assert.are.equal(r[1], r[2])
      assert.is_true(r[3])
    end)
  end)

  describe("errors", function()
    it("raises syntax errors at compile time with code, position and token", function()
      local ok, e = pcall(jsonata.compile, "a + ")
      assert.is_false(ok)
      assert.are.equal("S0207", e.code)
      ok, e = pcall(jsonata.compile, "foo(1]")
      assert.is_false(ok)
      assert.are.equal("S0202", e.code)
      assert.are.equal("]", e.token)
      assert.is_number(e.position)
      assert.are.equal('S0202: Expected ")", got "]" (at position 6)', tostring(e))
    end)

    it("raises evaluation errors with JSONata's codes", function()
      local e = err("'a' + 1")
      assert.are.equal("T2001", e.code)
      assert.are.equal("+", e.token)
      assert.are.equal('The left side of the "+" operator must evaluate to a number', e.message)
      assert.are.equal(5, e.position)
      assert.are.equal("T0410", err("$substring('a', 'b')").code)
      assert.are.equal("D3030", err("$number('x')").code)
      assert.are.equal("T1006", err("$x()", nil, { x = 1 }).code)
      assert.are.equal("D3137", err("$error('boom')").code)
      assert.are.equal("boom", err("$error('boom')").message)
    end)

    it("never lets a Lua traceback through, even for deep recursion", function()
      local e = err("($f := function($n){ $n = 0 ? 0 : 1 + $f($n - 1) }; $f(100000))")
      assert.are.equal("U1001", e.code)
      assert.is_nil(tostring(e):find("%.lua:%d"))
    end)

    it("reports errors of bound Lua functions and bad arguments as U1000, without Lua locations", function()
      local e = err("$f(1)", nil, { f = function() error("boom") end })
      assert.are.equal("U1000", e.code)
      assert.are.equal("boom", e.message)
      assert.are.equal("U1000", err("1", nil, "not a table").code)
    end)

    it("runs deep tail recursion in constant space", function()
      assert.are.equal(0, eval("($f := function($n){ $n = 0 ? 0 : $f($n - 1) }; $f(100000))"))
    end)
  end)

  describe("limits", function()
    it("stops an expression past time_limit_ms with U1001", function()
      local e = err("($f := function(){ $f() }; $f())", nil, nil, { time_limit_ms = 50 })
      assert.are.equal("U1001", e.code)
    end)

    it("stops an expression nested past max_depth with U1001", function()
      local text = "($f := function($n){ $n = 0 ? 0 : 1 + $f($n - 1) }; $f(%d))"
      assert.are.equal(10, eval(text:format(10), nil, nil, { max_depth = 100 }))
      assert.are.equal("U1001", err(text:format(200), nil, nil, { max_depth = 100 }).code)
    end)
  end)

  describe("the language", function()
    local doc = json.decode([[{"Account":{"Order":[
      {"OrderID":"o1","Product":[{"Name":"Hat","Price":10,"Quantity":2},
                                 {"Name":"Cap","Price":5,"Quantity":1}]},
      {"OrderID":"o2","Product":[{"Name":"Hat","Price":10,"Quantity":4}]}]}}]])

    it("navigates paths with predicates, wildcards, descendants and indexes", function()
      assert.are.same({ "Hat", "Cap", "Hat" }, eval("Account.Order.Product.Name", doc))
      assert.are.equal("Cap", eval("Account.Order.Product[Price < 10].Name", doc))
      assert.are.equal("o2", eval("Account.Order[-1].OrderID", doc))
      assert.are.same({ "o1", "o2" }, eval("**.OrderID", doc))
      assert.are.same({ "Hat" }, eval("Account.Order[1].Product.Name[]", doc))
    end)

    it("groups, aggregates, sorts and binds positions, focus and parents", function()
      assert.are.equal('{"Hat":60,"Cap":5}',
        json.encode(eval("Account.Order.Product{ Name: $sum($.(Price * Quantity)) }", doc)))
      assert.are.same({ 4, 2, 1 }, eval("Account.Order.Product^(>Quantity).Quantity", doc))
      assert.are.same({ "o1:0", "o1:1", "o2:0" },
        eval("Account.Order.Product#$i.(%.OrderID & ':' & $i)", doc))
      assert.are.same({ "o1 Hat", "o1 Cap", "o2 Hat" },
        eval("Account.Order@$o.$o.Product.($o.OrderID & ' ' & Name)", doc))
    end)

    it("supports lambdas, closures, partial application, chaining and ?:, ??", function()
      assert.are.equal(15, eval("$reduce([1..5], function($a, $b){ $a + $b })"))
      assert.are.equal("HELLO", eval("($up := $uppercase(?); 'hello' ~> $up)"))
      assert.are.same({ 1, 4, 9 }, eval("[1,2,3] ~> $map(function($v){ $v * $v })"))
      assert.are.equal(3, eval("($add := function($x){ function($y){ $x + $y } }; $add(1)(2))"))
      assert.are.equal("dflt", eval("missing ?? 'dflt'"))
      assert.are.equal(7, eval("0 ?: 7"))
    end)
  end)
end)

describe("emrflow.asl.query.jsonata (JSONata in state machines)", function()
  local q = require "emrflow.asl.query.jsonata"

  local function template(v, field)
    if type(v) == "string" and not v:find("^{%%") then v = json.decode(v) end
    field = field or "Output"
    return assert(q.compile_template(v, { field = field, path = "/States/S/" .. field }))
  end

  local function query_error(f)
    local ok, e = pcall(f)
    assert.is_false(ok)
    assert.are.equal("States.QueryEvaluationError", e.Error)
    return e.Cause
  end

  it("evaluates {% %} strings at any depth of a value and leaves other strings alone", function()
    local t = template([[{"a": "{% $states.input.x * 2 %}", "b": [1, {"c": "{% $v & '!' %}"}],
      "lit": " {% $states.input %} ", "d": "$states.input"}]])
    local out = q.evaluate_template(t, { input = json.decode('{"x": 21}'), vars = { v = "hi" } })
    assert.are.equal('{"a":42,"b":[1,{"c":"hi!"}],"lit":" {% $states.input %} ","d":"$states.input"}',
      json.encode(out))
  end)

  it("compiles a value without expressions to itself", function()
    local v = json.decode('{"a":[1,{"b":null}]}')
    assert.are.equal(v, q.evaluate_template(template(v), { input = {} }))
  end)

  it("gives $states.input, .result, .errorOutput and .context", function()
    local env = { input = json.decode('{"i":1}'), result = json.decode('{"r":2}'),
      errorOutput = json.decode('{"Error":"E","Cause":"C"}'),
      context = json.decode('{"State":{"Name":"S"}}') }
    local out = q.evaluate_template(template(
      "{% [$states.input.i, $states.result.r, $states.errorOutput.Error, $states.context.State.Name] %}"),
      env)
    assert.are.equal('[1,2,"E","S"]', json.encode(out))
  end)

  it("has Step Functions' functions and not $eval", function()
    local function ev(text) return q.evaluate_template(template("{% " .. text .. " %}"), { input = {} }) end
    assert.are.equal("[[1,2],[3]]", json.encode(ev("$partition([1,2,3], 2)")))
    assert.are.equal("[0,3,6,9]", json.encode(ev("$range(0, 10, 3)")))
    assert.are.equal(1, ev("$range(1, 9, 9)"))
    assert.are.equal("812f45842bc6d66ee14572ce20db8e86", ev("$hash('input data', 'MD5')"))
    assert.are.equal('{"a":[1]}', json.encode(ev("$parse('{\"a\": [1]}')")))
    assert.matches("^%x+%-%x+%-4%x+%-[89ab]%x+%-%x+$", ev("$uuid()"))
    assert.is_true(ev("$random(7) = $random(7) and $random() < 1"))
    assert.matches("T1006", query_error(function() ev("$eval('1')") end))
  end)

  it("refuses malformed expressions and the 2.1 operators at load time", function()
    local c, msg = q.compile_template(json.decode('{"a": "{% 1 + %}"}'), { field = "Output" })
    assert.is_nil(c)
    assert.matches("S0207", msg)
    for _, text in ipairs { "{% $a ?: 1 %}", "{% $a ?? 1 %}" } do
      c, msg = q.compile_template(text, { field = "Output" })
      assert.is_nil(c)
      assert.matches("not supported in Step Functions", msg)
    end
  end)

  it("raises States.QueryEvaluationError as Step Functions words it", function()
    local t = template('{"result": "{% $doesNotExist %}"}')
    assert.are.equal("The JSONata expression '$doesNotExist' specified for the field 'Output/result' "
      .. "returned nothing (undefined).", query_error(function() q.evaluate_template(t, { input = {} }) end))
    t = template("{% $fn := function($x){$x} %}", "Items")
    assert.are.equal("The JSONata expression '$fn := function($x){$x}' specified for the field 'Items' "
      .. "returned an unsupported result type.",
      query_error(function() q.evaluate_template(t, { input = {} }) end))
    t = template("{% 1 + 'a' %}")
    assert.matches("T2002", query_error(function() q.evaluate_template(t, { input = {} }) end))
    t = assert(q.compile_template("{% $states.input.items %}", { field = "Items" }))
    assert.are.equal("The JSONata expression '$states.input.items' specified for the field 'Items' "
      .. "returned an unexpected result type. Expected 'array', but was 'object' for value: {\"a\":1}",
      query_error(function() q.evaluate_template(t, { input = json.decode('{"items":{"a":1}}') }) end))
    assert.are.equal("[1]", json.encode(q.evaluate_template(t, { input = json.decode('{"items":[1]}') })))
  end)
end)
