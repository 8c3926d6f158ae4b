--- JSONata parser: text -> processed AST.
--
-- A tokenizer, a Pratt (top-down operator precedence) parser, then one pass that turns
-- the raw tree into the evaluator's form: location paths as step lists, predicates and
-- grouping attached to steps, focus (@) and index (#) bindings, parent (%) slots resolved
-- against the steps they refer to, and lambda bodies marked for tail calls.
-- Errors raise { code = "S0201", position = N, token = "..." } (position: 1-based offset
-- just past the token, as JSONata reports it).
local errors = require "emrflow.jsonata.errors"

local M = {}

local raise = errors.raise

-- binding powers (left) of the operators
local BP = {
  ["."] = 75, ["["] = 80, ["]"] = 0, ["{"] = 70, ["}"] = 0, ["("] = 80, [")"] = 0, [","] = 0,
  ["@"] = 80, ["#"] = 80, [";"] = 80, [":"] = 80, ["?"] = 20, ["+"] = 50, ["-"] = 50,
  ["*"] = 60, ["/"] = 60, ["%"] = 60, ["|"] = 20, ["="] = 40, ["<"] = 40, [">"] = 40,
  ["^"] = 40, ["**"] = 60, [".."] = 20, [":="] = 10, ["!="] = 40, ["<="] = 40, [">="] = 40,
  ["~>"] = 40, ["?:"] = 40, ["??"] = 40, ["and"] = 30, ["or"] = 25, ["in"] = 40, ["&"] = 50,
  ["!"] = 0, ["~"] = 0,
}
M.BP = BP

-- binding powers in the parser: only tokens with an infix form bind to their left
local LED = {}
for _, op in ipairs({ ".", "[", "{", "(", "@", "#", "?", "+", "-", "*", "/", "%", "=", "<", ">", "^",
  ":=", "!=", "<=", ">=", "~>", "?:", "??", "and", "or", "in", "&" }) do LED[op] = BP[op] end
-- tokens the tokenizer knows but the grammar does not
local UNKNOWN = { ["!"] = true, ["~"] = true }

local TWO_CHAR = {
  [".."] = true, [":="] = true, ["!="] = true, [">="] = true, ["<="] = true, ["**"] = true,
  ["~>"] = true, ["?:"] = true, ["??"] = true,
}

local ESCAPES = { ['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f", n = "\n", r = "\r", t = "\t" }

-- A lone surrogate (\uD800) keeps its code as WTF-8 bytes: not valid UTF-8, so functions that
-- need text ($encodeUrl) refuse it as jsonata-js does.
local function utf8_char(cp)
  return utf8.char(cp)
end

--------------------------------------------------------------------------------------------
-- Tokenizer
--------------------------------------------------------------------------------------------

local function tokenizer(src)
  local pos = 1
  local len = #src

  -- positions as jsonata-js reports them: the offset just past the token, counted from 0 in
  -- characters
  local ascii = not src:find("[\128-\255]")
  local function tok(type_, value, p)
    local at = (p or pos) - 1
    if not ascii then at = utf8.len(src, 1, at) or at end
    return { type = type_, value = value, position = at }
  end

  local function scan_string(quote)
    local parts = {}
    pos = pos + 1
    while pos <= len do
      local c = src:sub(pos, pos)
      if c == "\\" then
        pos = pos + 1
        c = src:sub(pos, pos)
        if ESCAPES[c] then
          parts[#parts + 1] = ESCAPES[c]
        elseif c == "u" then
          local hex = src:match("^%x%x%x%x", pos + 1)
          if not hex then raise("S0104", pos) end
          local cp = tonumber(hex, 16)
          pos = pos + 4
          -- surrogate pair
          if cp >= 0xD800 and cp <= 0xDBFF then
            local lo = src:match("^\\u(%x%x%x%x)", pos + 1)
            local lcp = lo and tonumber(lo, 16)
            if lcp and lcp >= 0xDC00 and lcp <= 0xDFFF then
              cp = 0x10000 + (cp - 0xD800) * 0x400 + (lcp - 0xDC00)
              pos = pos + 6
            end
          end
          parts[#parts + 1] = utf8_char(cp)
        else
          raise("S0103", pos, c)
        end
      elseif c == quote then
        pos = pos + 1
        return tok("string", table.concat(parts), pos)
      else
        local s, e = src:find('^[^\\' .. quote .. ']+', pos)
        parts[#parts + 1] = src:sub(s, e)
        pos = e
      end
      pos = pos + 1
    end
    raise("S0101", #src)
  end

  local function scan_regex()
    local start, depth = pos, 0
    local function closing(p)
      if src:sub(p, p) == "/" and depth == 0 then
        local back = 0
        while src:sub(p - back - 1, p - back - 1) == "\\" do back = back + 1 end
        return back % 2 == 0
      end
      return false
    end
    while pos <= len do
      local c = src:sub(pos, pos)
      if closing(pos) then
        local pattern = src:sub(start, pos - 1)
        if pattern == "" then raise("S0301", pos) end
        pos = pos + 1
        local fs, fe = src:find("^[im]*", pos)
        local flags = src:sub(fs, fe)
        pos = fe + 1
        return tok("regex", { pattern = pattern, flags = flags }, pos)
      end
      if (c == "(" or c == "[" or c == "{") and src:sub(pos - 1, pos - 1) ~= "\\" then depth = depth + 1 end
      if (c == ")" or c == "]" or c == "}") and src:sub(pos - 1, pos - 1) ~= "\\" then depth = depth - 1 end
      pos = pos + 1
    end
    raise("S0302", pos)
  end

  -- next token; prefix = true when the token follows an operand (so '/' divides)
  return function(prefix)
    -- whitespace and comments
    while true do
      local _, e = src:find("^%s+", pos)
      if e then pos = e + 1 end
      if src:sub(pos, pos + 1) == "/*" then
        local cs = pos
        local _, ce = src:find("*/", pos + 2, true)
        if not ce then raise("S0106", cs - 1) end
        pos = ce + 1
      else
        break
      end
    end
    if pos > len then return nil end
    local c = src:sub(pos, pos)
    if prefix ~= true and c == "/" then
      pos = pos + 1
      return scan_regex()
    end
    local two = src:sub(pos, pos + 1)
    if TWO_CHAR[two] and not (two == ".." and false) then
      pos = pos + 2
      return tok("operator", two)
    end
    if BP[c] and #c == 1 and c ~= "" then
      pos = pos + 1
      return tok("operator", c)
    end
    if c == '"' or c == "'" then return scan_string(c) end
    local num = src:match("^%d+%.?%d*[eE]?[-+]?%d*", pos)
    if num then
      -- JSONata's number syntax: (0|[1-9][0-9]*)(\.[0-9]+)?([Ee][-+]?[0-9]+)?
      local m = src:match("^0", pos) and "0" or src:match("^[1-9]%d*", pos)
      if m then
        local frac = src:match("^%.%d+", pos + #m)
        if frac then m = m .. frac end
        local ex = src:match("^[eE][-+]?%d+", pos + #m)
        if ex then m = m .. ex end
        local v = tonumber(m)
        if math.type(v) == "integer" and not m:find("[.eE]") and #m > 15 then v = tonumber(m .. ".0") or v end
        if v == math.huge or v == -math.huge or v ~= v then raise("S0102", pos, m) end
        pos = pos + #m
        if math.type(v) == "float" and v == math.floor(v) and v > -2^53 and v < 2^53 then
          v = math.tointeger(v)
        end
        return tok("number", v)
      end
    end
    if c == "`" then
      local e = src:find("`", pos + 1, true)
      if not e then raise("S0105", len) end
      local name = src:sub(pos + 1, e - 1)
      pos = e + 1
      return tok("name", name)
    end
    -- a name: up to whitespace or an operator character
    local s = pos
    while pos <= len do
      local ch = src:sub(pos, pos)
      if ch:find("^%s") or BP[ch] then break end
      pos = pos + 1
    end
    local name = src:sub(s, pos - 1)
    if name:sub(1, 1) == "$" then return tok("variable", name:sub(2)) end
    if name == "and" or name == "or" or name == "in" then return tok("operator", name) end
    if name == "true" then return tok("value", true) end
    if name == "false" then return tok("value", false) end
    if name == "null" then return tok("value", errors.null) end
    if name == "" then raise("S0204", pos, c) end
    return tok("name", name)
  end
end

--------------------------------------------------------------------------------------------
-- Pratt parser
--------------------------------------------------------------------------------------------

local function parse_signature(sig, position)
  local sigmod = require "emrflow.jsonata.signature"
  return sigmod.parse(sig, position)
end

local function parse_raw(src)
  local lexer = tokenizer(src)
  local node -- current token (with id, lbp)

  local function advance(id, infix)
    if id and node.id ~= id then
      if node.id == "(end)" then raise("S0203", node.position, node.value, { value = id }) end
      raise("S0202", node.position, node.value, { value = id })
    end
    local t = lexer(infix)
    if t == nil then
      node = { id = "(end)", lbp = 0, position = #src, type = "(end)", value = "(end)" }
      return node
    end
    local n = { type = t.type, value = t.value, position = t.position }
    if t.type == "operator" then
      if BP[t.value] == nil or UNKNOWN[t.value] then raise("S0204", t.position, t.value) end
      n.id = t.value
      n.lbp = LED[t.value] or 0
    elseif t.type == "name" or t.type == "variable" then
      n.id, n.lbp = "(name)", 0
    elseif t.type == "regex" then
      n.id, n.lbp = "(regex)", 0
    else
      n.id, n.lbp = "(literal)", 0
    end
    node = n
    return n
  end

  local expression, nud, led

  function expression(rbp)
    local t = node
    advance(nil, true)
    local left = nud(t)
    while rbp < node.lbp do
      t = node
      advance()
      left = led(t, left)
    end
    return left
  end

  local function parse_object(this, left)
    local pairs_ = {}
    if node.id ~= "}" then
      while true do
        local n = expression(0)
        advance(":")
        local v = expression(0)
        pairs_[#pairs_ + 1] = { n, v }
        if node.id ~= "," then break end
        advance(",")
      end
    end
    advance("}", true)
    if left == nil then
      this.lhs = pairs_
      this.type = "unary"
    else
      this.lhs = left
      this.rhs = pairs_
      this.type = "binary"
    end
    return this
  end

  function nud(t)
    local id = t.id
    if id == "(name)" or id == "(literal)" or id == "(regex)" then return t end
    if id == "and" or id == "or" or id == "in" then return t end -- used as names
    if id == "-" then
      t.expression = expression(70)
      t.type = "unary"
      return t
    elseif id == "*" then
      t.type = "wildcard"
      return t
    elseif id == "**" then
      t.type = "descendant"
      return t
    elseif id == "%" then
      t.type = "parent"
      return t
    elseif id == "(" then
      local exprs = {}
      while node.id ~= ")" do
        exprs[#exprs + 1] = expression(0)
        if node.id ~= ";" then break end
        advance(";")
      end
      advance(")", true)
      t.type = "block"
      t.expressions = exprs
      return t
    elseif id == "[" then
      local a = {}
      if node.id ~= "]" then
        while true do
          local item = expression(0)
          if node.id == ".." then
            local range = { type = "binary", value = "..", position = node.position, lhs = item }
            advance("..")
            range.rhs = expression(0)
            item = range
          end
          a[#a + 1] = item
          if node.id ~= "," then break end
          advance(",")
        end
      end
      advance("]", true)
      t.expressions = a
      t.type = "unary"
      return t
    elseif id == "{" then
      return parse_object(t, nil)
    elseif id == "|" then
      t.type = "transform"
      t.pattern = expression(0)
      advance("|")
      t.update = expression(0)
      if node.id == "," then
        advance(",")
        t.delete = expression(0)
      end
      advance("|")
      return t
    elseif id == "(end)" then
      raise("S0207", t.position, "(end)")
    end
    raise("S0211", t.position, t.value)
  end

  local function binary(t, left, bp)
    t.lhs = left
    t.rhs = expression(bp)
    t.type = "binary"
    return t
  end

  function led(t, left)
    local id = t.id
    if id == "(" then
      t.procedure = left
      t.type = "function"
      t.arguments = {}
      if node.id ~= ")" then
        while true do
          if node.id == "(end)" then advance(")") end -- "Expected ) before end of expression"
          if node.type == "operator" and node.id == "?" then
            t.type = "partial"
            t.arguments[#t.arguments + 1] = node
            advance("?")
          else
            t.arguments[#t.arguments + 1] = expression(0)
          end
          if node.id ~= "," then break end
          advance(",")
        end
      end
      advance(")", true)
      if left.type == "name" and (left.value == "function" or left.value == "λ") then
        for i, arg in ipairs(t.arguments) do
          if arg.type ~= "variable" then raise("S0208", arg.position, arg.value, { value = i }) end
        end
        t.type = "lambda"
        if node.id == "<" then
          local sig_pos, depth, sig = node.position, 1, { "<" }
          while depth > 0 and node.id ~= "{" and node.id ~= "(end)" do
            local tk = advance()
            if tk.id == ">" then
              depth = depth - 1
            elseif tk.id == "<" then
              depth = depth + 1
            end
            sig[#sig + 1] = tostring(tk.value)
          end
          advance(">")
          t.signature = parse_signature(table.concat(sig), sig_pos)
        end
        advance("{")
        t.body = expression(0)
        advance("}")
      end
      return t
    elseif id == "[" then
      if node.id == "]" then
        local step = left
        while step and step.type == "binary" and step.value == "[" do step = step.lhs end
        step.keepArray = true
        advance("]")
        return left
      end
      t.lhs = left
      t.rhs = expression(BP["]"])
      t.type = "binary"
      advance("]", true)
      return t
    elseif id == "^" then
      advance("(")
      local terms = {}
      while true do
        local term = { descending = false }
        if node.id == "<" then
          advance("<")
        elseif node.id == ">" then
          term.descending = true
          advance(">")
        end
        term.expression = expression(0)
        terms[#terms + 1] = term
        if node.id ~= "," then break end
        advance(",")
      end
      advance(")")
      t.lhs = left
      t.rhs = terms
      t.type = "binary"
      return t
    elseif id == "{" then
      return parse_object(t, left)
    elseif id == ":=" then
      if left.type ~= "variable" then raise("S0212", left.position, left.value) end
      return binary(t, left, BP[":="] - 1)
    elseif id == "@" or id == "#" then
      binary(t, left, BP[id])
      if t.rhs.type ~= "variable" then raise("S0214", t.rhs.position, id) end
      return t
    elseif id == "?" then
      t.type = "condition"
      t.condition = left
      t["then"] = expression(0)
      if node.id == ":" then
        advance(":")
        t["else"] = expression(0)
      end
      return t
    elseif id == "?:" then
      t.type = "condition"
      t.operator = "?:"
      t.condition = left
      t["then"] = left
      t["else"] = expression(0)
      return t
    elseif id == "??" then
      t.type = "condition"
      t.operator = "??"
      t.condition = { type = "function", value = "(", position = t.position,
        procedure = { type = "variable", value = "exists", position = t.position }, arguments = { left } }
      t["then"] = left
      t["else"] = expression(0)
      return t
    elseif id == "." or id == "+" or id == "-" or id == "*" or id == "/" or id == "%" or id == "="
      or id == "<" or id == ">" or id == "!=" or id == "<=" or id == ">=" or id == "&" or id == "and"
      or id == "or" or id == "in" or id == "~>" then
      return binary(t, left, BP[id])
    end
    raise("S0201", t.position, t.value)
  end

  advance()
  local ast = expression(0)
  if node.id ~= "(end)" then raise("S0201", node.position, node.value) end
  return ast
end

--------------------------------------------------------------------------------------------
-- AST post-processing
--------------------------------------------------------------------------------------------

local function process(ast)
  local ancestor_label, ancestor_index, ancestry = 0, 0, {}
  local process_ast

  local function seek_parent(node, slot)
    local t = node.type
    if t == "name" or t == "wildcard" then
      slot.level = slot.level - 1
      if slot.level == 0 then
        if node.ancestor == nil then
          node.ancestor = slot
        else
          ancestry[slot.index + 1].slot.label = node.ancestor.label
          node.ancestor = slot
        end
        node.tuple = true
      end
    elseif t == "parent" then
      slot.level = slot.level + 1
    elseif t == "block" then
      if #node.expressions > 0 then
        node.tuple = true
        slot = seek_parent(node.expressions[#node.expressions], slot)
      end
    elseif t == "path" then
      node.tuple = true
      local index = #node.steps
      slot = seek_parent(node.steps[index], slot)
      index = index - 1
      while slot.level > 0 and index >= 1 do
        slot = seek_parent(node.steps[index], slot)
        index = index - 1
      end
    else
      raise("S0217", node.position, t)
    end
    return slot
  end

  local function push_ancestry(result, value)
    if value.seekingParent ~= nil or value.type == "parent" then
      local slots = value.seekingParent or {}
      if value.type == "parent" then slots[#slots + 1] = value.slot end
      if result.seekingParent == nil then
        result.seekingParent = slots
      else
        for _, s in ipairs(slots) do result.seekingParent[#result.seekingParent + 1] = s end
      end
    end
  end

  local function resolve_ancestry(path)
    local steps = path.steps
    local laststep = steps[#steps]
    local slots = laststep.seekingParent or {}
    if laststep.type == "parent" then slots[#slots + 1] = laststep.slot end
    for _, slot in ipairs(slots) do
      local index = #steps - 1
      while slot.level > 0 do
        if index < 1 then
          path.seekingParent = path.seekingParent or {}
          path.seekingParent[#path.seekingParent + 1] = slot
          break
        end
        local step = steps[index]
        index = index - 1
        while index >= 1 and step.focus and steps[index].focus do
          step = steps[index]
          index = index - 1
        end
        slot = seek_parent(step, slot)
      end
    end
  end

  local function tail_call_optimize(expr)
    if expr.type == "function" and not expr.predicate then
      return { type = "lambda", thunk = true, arguments = {}, position = expr.position, body = expr }
    elseif expr.type == "condition" then
      expr["then"] = tail_call_optimize(expr["then"])
      if expr["else"] ~= nil then expr["else"] = tail_call_optimize(expr["else"]) end
      return expr
    elseif expr.type == "block" then
      local n = #expr.expressions
      if n > 0 then expr.expressions[n] = tail_call_optimize(expr.expressions[n]) end
      return expr
    end
    return expr
  end

  local function last_step(result)
    if result.type == "path" then return result.steps[#result.steps] end
    return result
  end

  local function process_binary(expr)
    local op = expr.value
    local result
    if op == "." then
      local lstep = process_ast(expr.lhs)
      if lstep.type == "path" then
        result = lstep
      else
        result = { type = "path", steps = { lstep } }
      end
      if lstep.type == "parent" then result.seekingParent = { lstep.slot } end
      local rest = process_ast(expr.rhs)
      if rest.type == "path" then
        for _, s in ipairs(rest.steps) do result.steps[#result.steps + 1] = s end
      else
        if rest.predicate ~= nil then
          rest.stages = rest.predicate
          rest.predicate = nil
        end
        result.steps[#result.steps + 1] = rest
      end
      local keep = false
      for _, step in ipairs(result.steps) do
        if step.type == "number" or step.type == "value" then
          raise("S0213", step.position, nil, { value = step.value })
        end
        if step.type == "string" then step.type = "name" end
        if step.keepArray then keep = true end
      end
      if keep then result.keepSingletonArray = true end
      local first, last = result.steps[1], result.steps[#result.steps]
      if first.type == "unary" and first.value == "[" then first.consarray = true end
      if last.type == "unary" and last.value == "[" then last.consarray = true end
      resolve_ancestry(result)
    elseif op == "[" then
      result = process_ast(expr.lhs)
      local step, kind = result, "predicate"
      if result.type == "path" then
        step = result.steps[#result.steps]
        kind = "stages"
      end
      if step.group ~= nil then raise("S0209", expr.position) end
      step[kind] = step[kind] or {}
      local predicate = process_ast(expr.rhs)
      if predicate.seekingParent ~= nil then
        for _, slot in ipairs(predicate.seekingParent) do
          if slot.level == 1 then
            seek_parent(step, slot)
          else
            slot.level = slot.level - 1
          end
        end
        push_ancestry(step, predicate)
      end
      step[kind][#step[kind] + 1] = { type = "filter", expr = predicate, position = expr.position }
    elseif op == "{" then
      result = process_ast(expr.lhs)
      if result.group ~= nil then raise("S0210", expr.position) end
      local pairs_ = {}
      for i, pair in ipairs(expr.rhs) do
        pairs_[i] = { process_ast(pair[1]), process_ast(pair[2]) }
      end
      result.group = { lhs = pairs_, position = expr.position }
    elseif op == "^" then
      result = process_ast(expr.lhs)
      if result.type ~= "path" then result = { type = "path", steps = { result } } end
      local sort_step = { type = "sort", position = expr.position }
      local terms = {}
      for i, term in ipairs(expr.rhs) do
        local e = process_ast(term.expression)
        push_ancestry(sort_step, e)
        terms[i] = { descending = term.descending, expression = e }
      end
      sort_step.terms = terms
      result.steps[#result.steps + 1] = sort_step
      resolve_ancestry(result)
    elseif op == ":=" then
      result = { type = "bind", value = op, position = expr.position }
      result.lhs = process_ast(expr.lhs)
      result.rhs = process_ast(expr.rhs)
      push_ancestry(result, result.rhs)
    elseif op == "@" then
      result = process_ast(expr.lhs)
      local step = last_step(result)
      if step.stages ~= nil or step.predicate ~= nil then raise("S0215", expr.position) end
      if step.type == "sort" then raise("S0216", expr.position) end
      if expr.keepArray then step.keepArray = true end
      step.focus = expr.rhs.value
      step.tuple = true
    elseif op == "#" then
      result = process_ast(expr.lhs)
      local step = result
      if result.type == "path" then
        step = result.steps[#result.steps]
      else
        result = { type = "path", steps = { result } }
        if step.predicate ~= nil then
          step.stages = step.predicate
          step.predicate = nil
        end
      end
      if step.stages == nil then
        step.index = expr.rhs.value
      else
        step.stages[#step.stages + 1] = { type = "index", value = expr.rhs.value, position = expr.position }
      end
      step.tuple = true
    elseif op == "~>" then
      result = { type = "apply", value = op, position = expr.position }
      result.lhs = process_ast(expr.lhs)
      result.rhs = process_ast(expr.rhs)
      result.keepArray = result.lhs.keepArray or result.rhs.keepArray
    else
      result = { type = "binary", value = op, position = expr.position }
      result.lhs = process_ast(expr.lhs)
      result.rhs = process_ast(expr.rhs)
      push_ancestry(result, result.lhs)
      push_ancestry(result, result.rhs)
    end
    return result
  end

  function process_ast(expr)
    local result
    local t = expr.type
    if t == "binary" then
      result = process_binary(expr)
    elseif t == "unary" then
      result = { type = "unary", value = expr.value, position = expr.position }
      if expr.value == "[" then
        local list = {}
        for i, item in ipairs(expr.expressions) do
          local v = process_ast(item)
          push_ancestry(result, v)
          list[i] = v
        end
        result.expressions = list
      elseif expr.value == "{" then
        local list = {}
        for i, pair in ipairs(expr.lhs) do
          local k = process_ast(pair[1])
          push_ancestry(result, k)
          local v = process_ast(pair[2])
          push_ancestry(result, v)
          list[i] = { k, v }
        end
        result.lhs = list
      else
        result.expression = process_ast(expr.expression)
        if expr.value == "-" and result.expression.type == "number" then
          result = result.expression
          result.value = -result.value
        else
          push_ancestry(result, result.expression)
        end
      end
    elseif t == "function" or t == "partial" then
      result = { type = t, value = expr.value, position = expr.position }
      local args = {}
      for i, arg in ipairs(expr.arguments) do
        local a = process_ast(arg)
        push_ancestry(result, a)
        args[i] = a
      end
      result.arguments = args
      result.procedure = process_ast(expr.procedure)
    elseif t == "lambda" then
      result = { type = t, arguments = expr.arguments, signature = expr.signature, position = expr.position }
      result.body = tail_call_optimize(process_ast(expr.body))
    elseif t == "condition" then
      result = { type = t, position = expr.position, operator = expr.operator }
      result.condition = process_ast(expr.condition)
      push_ancestry(result, result.condition)
      -- ?: shares one node between condition and then: process it once
      result["then"] = expr["then"] == expr.condition and result.condition or process_ast(expr["then"])
      push_ancestry(result, result["then"])
      if expr["else"] ~= nil then
        result["else"] = process_ast(expr["else"])
        push_ancestry(result, result["else"])
      end
    elseif t == "transform" then
      result = { type = t, position = expr.position }
      result.pattern = process_ast(expr.pattern)
      result.update = process_ast(expr.update)
      if expr.delete ~= nil then result.delete = process_ast(expr.delete) end
    elseif t == "block" then
      result = { type = t, position = expr.position }
      local list = {}
      for i, item in ipairs(expr.expressions) do
        local part = process_ast(item)
        push_ancestry(result, part)
        if part.consarray or (part.type == "path" and part.steps[1].consarray) then
          result.consarray = true
        end
        list[i] = part
      end
      result.expressions = list
    elseif t == "name" then
      result = { type = "path", steps = { expr } }
      if expr.keepArray then result.keepSingletonArray = true end
    elseif t == "parent" then
      result = { type = "parent", position = expr.position,
        slot = { label = "!" .. ancestor_label, level = 1, index = ancestor_index } }
      ancestor_label = ancestor_label + 1
      ancestor_index = ancestor_index + 1
      ancestry[#ancestry + 1] = result
    elseif t == "string" or t == "number" or t == "value" or t == "wildcard" or t == "descendant"
      or t == "variable" or t == "regex" then
      result = expr
    elseif t == "operator" then
      if expr.value == "and" or expr.value == "or" or expr.value == "in" then
        expr.type = "name"
        result = process_ast(expr)
      elseif expr.value == "?" then
        result = expr
      else
        raise("S0201", expr.position, expr.value)
      end
    else
      raise(expr.id == "(end)" and "S0207" or "S0206", expr.position, expr.value)
    end
    if expr.keepArray then result.keepArray = true end
    return result
  end

  local result = process_ast(ast)
  if result.type == "parent" or result.seekingParent ~= nil then
    raise("S0217", result.position, result.type)
  end
  return result
end

--- Parse JSONata text into the processed AST.
function M.parse(src)
  return process(parse_raw(src))
end

return M
