--- emrflow.version: the release this tree is.
--
-- `emrflow --version` prints it; the rockspec's version is "scm-1" (a build from the
-- repository), this is the version the code says it implements.
-- @module emrflow.version
return {
  --- The version string, "MAJOR.MINOR.PATCH" with a "-dev" suffix between releases.
  version = "0.2.0-dev",
}
