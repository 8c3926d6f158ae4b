-- Runs the C unit-test binaries, sums their "ctest: P F" lines and writes
-- "P F" to the counts file that the busted summary handler adds in.
local counts_file = assert(arg[1], "usage: run-ctests.lua COUNTS BIN...")
local passed, failed = 0, 0
for i = 2, #arg do
  local p = io.popen(arg[i] .. " 2>&1")
  local seen = false
  for line in p:lines() do
    local a, b = line:match("^ctest: (%d+) (%d+)$")
    if a then
      passed, failed, seen = passed + tonumber(a), failed + tonumber(b), true
    else
      io.stderr:write(line, "\n")
    end
  end
  p:close()
  if not seen then
    io.stderr:write(arg[i], ": crashed or printed no counts\n")
    failed = failed + 1
  end
end
io.stderr:write(string.format("C unit tests: %d passed, %d failed\n", passed, failed))
local f = assert(io.open(counts_file, "w"))
f:write(passed, " ", failed, "\n")
f:close()
os.exit(failed == 0 and 0 or 1)
