-- busted output handler: the usual terminal output, then one closing line
-- "N passed, N failed" that also counts the C unit tests. Skipped tests (pending: a corpus or
-- a tool that is absent) get a line of their own just before it, so that the last line keeps
-- the exact form the test contract promises.
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
    io.write("\n")
    if base.pendingsCount > 0 then
      io.write(string.format("%d skipped (see the pending notices above)\n", base.pendingsCount))
    end
    io.write(string.format("%d passed, %d failed\n", passed, failed))
    io.flush()
    return nil, true
  end

  busted.subscribe({ "suite", "end" }, finish)
  return base
end
