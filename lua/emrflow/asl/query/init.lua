-- emrflow.asl.query: the query languages a state can use (QueryLanguage), behind one interface
-- (ARCHITECTURE.md, "Query-language interface"): emrflow.asl.query.jsonpath and, once it is
-- written, emrflow.asl.query.jsonata.
--
--   query.get(name) --> language module | nil, message   ("JSONPath" | "JSONata")
--   query.register(name, module)                          (specs; nil removes it)

local M = {}

local MODULES = { JSONPath = "emrflow.asl.query.jsonpath", JSONata = "emrflow.asl.query.jsonata" }
local registered = {}

--- Installs a language module under a QueryLanguage name (nil uninstalls it).
function M.register(name, module)
  registered[name] = module
end

--- The language module for a QueryLanguage name, or nil and why.
function M.get(name)
  local lang = registered[name]
  if lang then return lang end
  local modname = MODULES[name]
  if not modname then return nil, ("unknown QueryLanguage %q"):format(tostring(name)) end
  if not package.searchpath(modname, package.path) then
    return nil, name .. " is not available (" .. modname .. " is not installed)"
  end
  local ok, mod = pcall(require, modname)
  if not ok then return nil, name .. " is not available: " .. tostring(mod) end
  return mod
end

return M
