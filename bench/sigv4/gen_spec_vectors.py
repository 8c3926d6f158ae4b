#!/usr/bin/python3
"""Independent SigV4 vectors for spec/sigv4_spec.lua, computed with Debian's
python3-botocore (run with /usr/bin/python3). Prints one Lua table per case;
the spec embeds the output, so the spec itself needs neither Python nor
../shared. Re-run to check: /usr/bin/python3 bench/sigv4/gen_spec_vectors.py"""
import datetime
import json
from unittest import mock

import botocore
from botocore.auth import S3SigV4Auth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

AKID = "AKIDEXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
TOKEN = "IQoJb3JpZ2luX2VjEXAMPLE//////////wEaCXVzLWVhc3QtMSJHMEUCIQD+token="
WHEN = datetime.datetime(2021, 3, 4, 5, 6, 7)  # 1614834367


def recording(base):
    class Rec(base):
        def canonical_request(self, request):
            self.creq = super().canonical_request(request)
            return self.creq

        def string_to_sign(self, request, canonical_request):
            self.sts = super().string_to_sign(request, canonical_request)
            return self.sts

    return Rec


def sign(name, method, url, headers, body, service, region, token=None, s3=False):
    creds = Credentials(AKID, SECRET, token)
    auth = recording(S3SigV4Auth if s3 else SigV4Auth)(creds, service, region)
    req = AWSRequest(method=method, url=url, data=body)
    for k, v in headers:
        req.headers[k] = v  # HTTPHeaders appends: duplicates kept in order
    with mock.patch("botocore.auth.datetime") as dt:
        dt.datetime.utcnow.return_value = WHEN
        auth.add_auth(req)
    return {
        "name": name, "method": method, "url": url, "headers": headers, "body": body,
        "service": service, "region": region, "token": token, "s3": s3,
        "canonical_request": auth.creq, "string_to_sign": auth.sts,
        "authorization": req.headers["Authorization"],
        "sent": [[k, v] for k, v in req.headers.items()],
    }


BODY = json.dumps({
    "name": "spec-job", "virtualClusterId": "vc0123456789abcdef",
    "executionRoleArn": "arn:aws:iam::123456789012:role/job-role",
    "releaseLabel": "emr-6.15.0-latest",
    "jobDriver": {"sparkSubmitJobDriver": {"entryPoint": "s3://my-bucket/main.py",
                                           "entryPointArguments": ["--day", "2021-03-04"]}},
    "clientToken": "c7b5e1f0-5d2a-4c69-9f2e-8a3b8d1e6f10",
}, separators=(",", ":"))

CASES = [
    sign("start-job-run eu-west-1 with token", "POST",
         "https://emr-containers.eu-west-1.amazonaws.com/virtualclusters/vc0123456789abcdef/jobruns",
         [["Content-Type", "application/json"], ["User-Agent", "emrflow/0.1"]], BODY,
         "emr-containers", "eu-west-1", token=TOKEN),
    sign("list-job-runs query, no token", "GET",
         "https://emr-containers.us-west-2.amazonaws.com/virtualclusters/vc1/jobruns"
         "?states=RUNNING&maxResults=10&states=COMPLETED&name=nightly%20run%2B1&createdBefore=2021-03-04T00%3A00%3A00Z",
         [], "", "emr-containers", "us-west-2"),
    sign("tags path double-encoded, non-default port", "GET",
         "https://localhost:8443/tags/arn%3Aaws%3Aemr-containers%3Aus-east-1%3A123456789012%3A%2Fvirtualclusters%2Fvc1",
         [], "", "emr-containers", "us-east-1", token=TOKEN),
    sign("headers: folding, duplicates, case", "PUT",
         "http://example.amazonaws.com:80/a/./b/../c//d/?z=&a=2&a=10",
         [["X-Custom", "  one   two\tthree  "], ["x-dup", "b"], ["X-Dup", "a"],
          ["X-Amzn-Trace-Id", "Root=1-abc"], ["Expect", "100-continue"]],
         "payload", "service", "us-east-1"),
    sign("S3-style: no normalisation, single encoding, x-amz-content-sha256", "PUT",
         "http://my-bucket.s3.amazonaws.com/dir//a%20key/./x.txt",
         [["Content-Type", "text/plain"]], "hello s3", "s3", "us-east-1", s3=True),
]


def lua_str(s):
    if s is None:
        return "nil"
    out = []
    for b in s.encode("utf-8"):
        c = chr(b)
        if c == "\\":
            out.append("\\\\")
        elif c == '"':
            out.append('\\"')
        elif c == "\n":
            out.append("\\n")
        elif c == "\t":
            out.append("\\t")
        elif 32 <= b < 127:
            out.append(c)
        else:
            out.append("\\%03d" % b)
    return '"' + "".join(out) + '"'


def lua_long(s, indent="      "):
    """A Lua string expression in pieces of at most 70 source characters, split
    after line breaks, so the spec stays within luacheck's line length."""
    if s is None:
        return "nil"
    pieces, cur = [], ""
    for ch in s:
        if len(lua_str(cur + ch)) > 72:
            pieces.append(cur)
            cur = ""
        cur += ch
        if ch == "\n":
            pieces.append(cur)
            cur = ""
    if cur or not pieces:
        pieces.append(cur)
    if len(pieces) == 1:
        return lua_str(pieces[0])
    return ("\n" + indent + ".. ").join(lua_str(p) for p in pieces)


def lua_pairs(ps):
    if not ps:
        return "{}"
    return "{\n" + "".join("      { %s,\n        %s },\n" % (lua_str(k), lua_long(v, "        "))
                           for k, v in ps) + "    }"


print("-- generated by bench/sigv4/gen_spec_vectors.py with botocore", botocore.__version__)
print("local BOTOCORE_CASES = {")
for c in CASES:
    print("  {")
    for k in ("name", "method", "url", "body", "service", "region", "token"):
        print("    %s = %s," % (k, lua_long(c[k])))
    print("    s3 = %s," % ("true" if c["s3"] else "false"))
    print("    headers = %s," % lua_pairs(c["headers"]))
    print("    canonical_request = %s," % lua_long(c["canonical_request"]))
    print("    string_to_sign = %s," % lua_long(c["string_to_sign"]))
    print("    authorization = %s," % lua_long(c["authorization"]))
    print("    sent = %s," % lua_pairs(c["sent"]))
    print("  },")
print("}")
