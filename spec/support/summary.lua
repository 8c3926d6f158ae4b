-- busted output handler: the usual terminal output, then one closing line
-- "N passed, N failed[, N skipped]" that also counts the C unit tests.
return function(options)
  local busted = require "busted"
  local base = require "busted.outputHandlers.utfTerminal"(options)

  local function c_counts()
    local path = os.getenv("EMRFLOW_CTEST_COUNTS")
    local f = path and io.open(path)
    if not f then return 0, 0 end
    local p, q = f:read("n", "n")
    f:close()
    return p or 0, q or 0
  end

  local function finish()
    local cp, cf = c_counts()
    local passed = base.successesCount + cp
    local failed = base.failuresCount + base.errorsCount + cf
    local line = string.format("%d passed, %d failed", passed, failed)
    if base.pendingsCount > 0 then
      line = line .. string.format(", %d skipped", base.pendingsCount)
    end
    io.write("\n", line, "\n")
    io.flush()
    return nil, true
  end

  busted.subscribe({ "suite", "end" }, finish)
  return base
end
