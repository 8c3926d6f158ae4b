-- emrflow.cli.mocks: the CLI extension (see emrflow.cli) for Step Functions Local mocks.
--
--   emrflow run DEFINITION --mock-config FILE --test-case NAME [--machine-name M]
--
-- The mock file may also come from the environment variable SFN_MOCK_CONFIG (the same one
-- Step Functions Local reads); --test-case selects the test case and turns mocking on. The
-- machine name is --machine-name, else the definition file's name without its extension,
-- else (definition on stdin) the name asl.load gave the machine. The hook checks the whole
-- configuration before the execution starts, so a broken file stops emrflow with exit 1
-- before any state runs; the engine then resolves each Task through it (emrflow.asl.mocks).
local mocks = require "emrflow.asl.mocks"

local M = {}

M.run_options = {
  { name = "mock-config", arg = "FILE",
    help = "Step Functions Local mock configuration (JSON; default: $SFN_MOCK_CONFIG)" },
  { name = "test-case", arg = "NAME", help = "test case of the mock configuration to run" },
  { name = "machine-name", arg = "M",
    help = "state machine name in the mock configuration (default: the definition's file name)" },
}

-- "path/to/pipeline.asl.json" --> "pipeline.asl"; "-" or nothing --> nil
local function file_machine_name(path)
  if type(path) ~= "string" or path == "" or path == "-" then return nil end
  local base = path:match("([^/]*)$")
  base = base:gsub("%.[^.]*$", "")
  if base == "" then return nil end
  return base
end

-- The machine name the mock configuration is searched for (nil: asl.load's name, which the
-- engine knows).
function M.machine_name(opts, start_opts)
  local given = opts["machine-name"]
  if type(given) == "string" then return given end
  return file_machine_name(opts.definition or start_opts.definition_path) or start_opts.machine_name
end

local function option_value(cli, opts, name)
  local v = opts[name]
  if v == true or v == "" then cli.fail("--" .. name .. " needs a value") end
  return v
end

function M.start_hook(opts, start_opts, cli, io)
  local getenv = (io and io.getenv) or os.getenv
  local file = option_value(cli, opts, "mock-config")
  local test_case = option_value(cli, opts, "test-case")
  local given_name = option_value(cli, opts, "machine-name")
  if not file and not test_case and not given_name then return end
  if not test_case then
    cli.fail("--" .. (file and "mock-config" or "machine-name") .. " needs --test-case NAME")
  end
  if not file then
    file = getenv("SFN_MOCK_CONFIG")
    if file == nil or file == "" then
      cli.fail("--test-case needs a mock configuration: --mock-config FILE or SFN_MOCK_CONFIG")
    end
  end
  local machine_name = M.machine_name(opts, start_opts)
  if machine_name then
    -- Check the configuration now: a broken file must stop emrflow before any state runs.
    local ok, err = pcall(mocks.new, file, test_case, machine_name)
    if not ok then
      cli.fail(type(err) == "table" and err.message or tostring(err))
    end
  end
  start_opts.mocks = { config = file, test_case = test_case, machine_name = machine_name }
end

return M
