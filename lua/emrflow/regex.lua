--- emrflow.regex: linear-time regular expressions (ECMAScript syntax) over UTF-8.
--
-- A Pike VM in the C core: leftmost-first matches with capture groups in
-- O(pattern * subject) time, never exponential, whatever the pattern.
--
--   local re = regex.compile("(\\w+)@(\\w+)", "i")  -- flags: "i", "m", "s", "j"
--   local start, stop, caps = re:exec("mail bob@host", 1)
--     --> 6, 13, { 6, 8, 10, 13 }     (stop = start - 1 for an empty match;
--                                       false, false for a group that did not take part)
--   re:test(subject)         --> boolean (a match anywhere)
--   re:full_match(subject)   --> boolean (the whole subject)
--   re.groups                --> number of capture groups
--   regex.full_match(pattern, subject [, flags]) --> boolean (compiled patterns cached)
--
-- Syntax: ECMAScript (with its Annex B leniencies: a lone "{" or "]" is a
-- literal, unknown escapes stand for the character; \u{...} is read without
-- the u flag too), lookahead (?= ) (?! ) (also linear: see src/ef_regex.h),
-- named groups (?<name> ), and Java's \p{Alnum}-style POSIX classes plus
-- Unicode categories \p{L} \p{Lu} \p{Ll} \p{M} \p{N} \p{Nd} \p{P} \p{S} \p{Z} \p{Zs}.
-- Backreferences and lookbehind are refused. "." and classes match whole code
-- points; a subject byte that is not valid UTF-8 counts as one Latin-1 character.
-- "i" follows ECMAScript's /i (upper-case mapping of the BMP). Patterns whose
-- program would pass 10,000 instructions (counted repetition) are refused.
-- A bad pattern raises { code = "regex", message =, position = } (1-based byte
-- offset in the pattern), printed as "regex: message at position N".
local core = require "emrflow.core"

local M = {}

local error_mt = {
  __tostring = function(e)
    if e.position and e.position > 0 then
      return ("regex: %s at position %d"):format(e.message, e.position)
    end
    return "regex: " .. e.message
  end,
}
M.error_mt = error_mt

local function raise(message, position)
  error(setmetatable({ code = "regex", message = message, position = position }, error_mt), 0)
end

--- Compiles `pattern` with `flags` (a string of "i", "m", "s", "j"; default "").
-- i: case-insensitive; m: ^ and $ at line breaks; s: . matches line breaks;
-- j: Java's meaning where java.util.regex differs (\s is ASCII, . also stops at
-- U+0085): use it for AWS API model patterns, which Java validates.
function M.compile(pattern, flags)
  if type(pattern) ~= "string" then
    raise("the pattern must be a string, got " .. type(pattern), 0)
  end
  if flags ~= nil and type(flags) ~= "string" then
    raise("flags must be a string of i, m, s, j; got " .. type(flags), 0)
  end
  local re, message, position = core.regex_compile(pattern, flags or "")
  if not re then raise(message, position) end
  return re
end

-- Compiled patterns for full_match, per flags; emptied when it grows large.
local cache, cached = {}, 0
local CACHE_MAX = 512

--- True when the whole `subject` matches `pattern` (compiled with `flags`, default "").
function M.full_match(pattern, subject, flags)
  local key = (flags or "") .. "/" .. pattern
  local re = cache[key]
  if not re then
    re = M.compile(pattern, flags)
    if cached >= CACHE_MAX then cache, cached = {}, 0 end
    cache[key] = re
    cached = cached + 1
  end
  return re:full_match(subject)
end

return M
