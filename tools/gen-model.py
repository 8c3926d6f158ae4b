#!/usr/bin/python3
"""Generate lua/emrflow/emr/model.lua from botocore's emr-containers model.

Usage:
    /usr/bin/python3 tools/gen-model.py [MODEL ...] > lua/emrflow/emr/model.lua

Each MODEL is a botocore ``service-2.json`` (or ``service-2.json.gz``); the
``paginators-1.json[.gz]`` beside it is read too. With several models, later
ones win for every operation and shape they define (give the oldest first), so
the result is the union: Debian's model plus the members newer models added.
Without arguments the Debian model is used, followed by any newer copy found
at the paths in $EMRFLOW_NEWER_MODELS (colon separated).

The output is plain Lua data: no documentation strings, keys sorted, so the
file only changes when the model does.
"""
import gzip
import json
import os
import sys

DEBIAN_MODEL = ("/usr/lib/python3/dist-packages/botocore/data/emr-containers/"
                "2020-10-01/service-2.json")


def load_json(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        return json.load(f)


def sibling(path, name):
    base = os.path.dirname(path)
    for candidate in (os.path.join(base, name), os.path.join(base, name + ".gz")):
        if os.path.exists(candidate):
            return candidate
    return None


def botocore_version(path):
    """The botocore version owning a model path, read from its __init__.py."""
    p = os.path.dirname(path)
    while p and p != "/":
        init = os.path.join(p, "__init__.py")
        if os.path.basename(p) == "botocore" and os.path.exists(init):
            with open(init, encoding="utf-8") as f:
                for line in f:
                    if line.startswith("__version__"):
                        return line.split("=", 1)[1].strip().strip("'\"")
        p = os.path.dirname(p)
    return "unknown"


def lua_str(s):
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif o < 0x20 or o == 0x7F:
            out.append("\\%03d" % o)
        elif o >= 0x80:
            out.append("".join("\\x%02X" % b for b in ch.encode("utf-8")))
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


IDENT_OK = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
LUA_KEYWORDS = {"and", "break", "do", "else", "elseif", "end", "false", "for",
                "function", "goto", "if", "in", "local", "nil", "not", "or",
                "repeat", "return", "then", "true", "until", "while"}


def lua_key(k):
    if k and not k[0].isdigit() and set(k) <= IDENT_OK and k not in LUA_KEYWORDS:
        return k
    return "[" + lua_str(k) + "]"


def lua_value(v, indent):
    pad = "  " * indent
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, str):
        return lua_str(v)
    if isinstance(v, list):
        if not v:
            return "{}"
        items = [lua_value(x, indent + 1) for x in v]
        one = "{ " + ", ".join(items) + " }"
        if len(one) + len(pad) < 100 and "\n" not in one:
            return one
        return "{\n" + "".join(pad + "  " + x + ",\n" for x in items) + pad + "}"
    if isinstance(v, dict):
        if not v:
            return "{}"
        keys = sorted(v) if not getattr(v, "ordered", False) else list(v)
        items = [lua_key(k) + " = " + lua_value(v[k], indent + 1) for k in keys]
        one = "{ " + ", ".join(items) + " }"
        if len(one) + len(pad) < 100 and "\n" not in one:
            return one
        return "{\n" + "".join(pad + "  " + x + ",\n" for x in items) + pad + "}"
    raise TypeError("cannot emit %r" % (v,))


def pascal(name):
    """Step Functions' spelling of a member name: first letter upper-cased."""
    return name[:1].upper() + name[1:]


def convert_shape(s):
    out = {"type": s["type"]}
    for k in ("min", "max", "pattern", "enum", "union", "sensitive", "exception",
              "timestampFormat"):
        if k in s:
            out[{"timestampFormat": "timestamp_format"}.get(k, k)] = s[k]
    if "error" in s:
        err = {}
        if "httpStatusCode" in s["error"]:
            err["status"] = s["error"]["httpStatusCode"]
        if "code" in s["error"]:
            err["code"] = s["error"]["code"]
        out["error"] = err
    if "retryable" in s:
        out["retryable"] = {"throttling": bool(s["retryable"].get("throttling"))}
    if s["type"] == "structure":
        members = []
        for name, m in s.get("members", {}).items():   # model order is kept
            mem = {"name": name, "pascal": pascal(name), "shape": m["shape"]}
            if "location" in m:
                mem["location"] = m["location"]
            if "locationName" in m:
                mem["location_name"] = m["locationName"]
            if m.get("idempotencyToken"):
                mem["idempotency_token"] = True
            if m.get("deprecated"):
                mem["deprecated"] = True
            members.append(mem)
        out["members"] = members
        out["required"] = list(s.get("required", []))
    elif s["type"] == "list":
        out["member"] = s["member"]["shape"]
    elif s["type"] == "map":
        out["key"] = s["key"]["shape"]
        out["value"] = s["value"]["shape"]
    return out


class Ordered(dict):
    ordered = True


def main(argv):
    paths = argv[1:]
    if not paths:
        paths = [DEBIAN_MODEL] + [p for p in os.environ.get("EMRFLOW_NEWER_MODELS", "").split(":") if p]
    operations, shapes, paginators, metadata, sources = {}, {}, {}, {}, []
    for path in paths:
        model = load_json(path)
        metadata = model["metadata"]
        sources.append("botocore %s %s" % (botocore_version(path), metadata.get("uid", "")))
        for name, op in model["operations"].items():
            o = {"name": name, "method": op["http"]["method"],
                 "uri": op["http"]["requestUri"]}
            if "responseCode" in op["http"]:
                o["status"] = op["http"]["responseCode"]
            if "input" in op:
                o["input"] = op["input"]["shape"]
            if "output" in op:
                o["output"] = op["output"]["shape"]
            o["errors"] = [e["shape"] for e in op.get("errors", [])]
            operations[name] = o
        for name, s in model["shapes"].items():
            shapes[name] = convert_shape(s)
        pag = sibling(path, "paginators-1.json")
        if pag:
            for name, p in load_json(pag).get("pagination", {}).items():
                paginators[name] = {k: p[k] for k in ("input_token", "output_token",
                                                      "limit_key", "result_key") if k in p}
    for name, p in paginators.items():
        if name in operations:
            operations[name]["paginator"] = p

    meta = {k: metadata[k] for k in ("apiVersion", "endpointPrefix", "protocol", "serviceId",
                                     "signingName", "signatureVersion", "uid",
                                     "serviceFullName") if k in metadata}
    top = Ordered()
    top["sources"] = sources
    top["metadata"] = meta
    top["operations"] = operations
    top["shapes"] = shapes
    sys.stdout.write("-- luacheck: no max line length\n")
    sys.stdout.write("-- emr-containers API model, generated by tools/gen-model.py from\n")
    for s in sources:
        sys.stdout.write("--   %s\n" % s)
    sys.stdout.write("-- Do not edit: regenerate with\n"
                     "--   /usr/bin/python3 tools/gen-model.py \\\n")
    for path in paths:
        sys.stdout.write("--     %s \\\n" % path)
    sys.stdout.write("--     > lua/emrflow/emr/model.lua\n")
    sys.stdout.write("return " + lua_value(top, 0) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
