"""fake_emr: a fake Amazon EMR on EKS (emr-containers) endpoint for emrflow's specs.

Run with Debian's Python (it uses Debian's botocore as an independent oracle):

    /usr/bin/python3 spec/support/fake_emr.py [--options]     # prints "PORT <n>"

Every request not under /__fake/ is
  1. checked for a valid SigV4 signature, recomputed with botocore's SigV4Auth from the
     received method, URL, signed headers and body with the known test credentials
     (403 InvalidSignatureException / IncompleteSignatureException / UnrecognizedClientException);
  2. routed by method and path to an operation of botocore's service model
     (404 UnknownOperationException otherwise);
  3. turned back into the operation's parameters (URI labels, query string, JSON body) and
     validated with botocore.validate (required members, types, min), then with the checks
     the service does itself (enum, max, pattern: Python's re.fullmatch) -> 400
     ValidationException naming the member;
  4. served from in-memory state: virtual clusters, job runs, job templates, managed endpoints
     and tags, with real-time lifecycles and clientToken idempotency.

Options (beyond fakehttp's):
  --access-key, --secret-key, --session-token   the test credentials (defaults: AWS's examples)
  --region (us-east-1), --account (123456789012)
  --job-seconds S      seconds each of PENDING, SUBMITTED, RUNNING lasts (default 1.0);
                       --pending-seconds / --submitted-seconds / --running-seconds override one
  --final-state        COMPLETED (default) | FAILED | CANCELLED: where an automatic job ends
  --cancel-seconds S   CANCEL_PENDING -> CANCELLED (default 0.2)
  --terminate-seconds S  virtual cluster TERMINATING -> TERMINATED (default 0.5)
  --page-size N        default maxResults of List* (default 50)
  --model PATH         validate against this service-2.json[.gz] instead of Debian's
  --no-verify-signature  skip step 1 (for benchmarks of other clients)

Control endpoints (beyond fakehttp's):
  POST /__fake/jobs/<id>/state {"state": "FAILED", "failureReason": "USER_ERROR",
        "stateDetails": "..."}        sets a job's state now; the job leaves automatic timing
        (send {"auto": true} to put it back on the clock from its current state)
  POST /__fake/clusters/<id>/state {"state": "ARRESTED"}
  GET  /__fake/state   -> {"virtualClusters": [...], "jobRuns": [...], "jobTemplates": [...]}
                          (wire shapes, every object, including terminated ones)
  stats adds: virtual_clusters, job_runs, signature_failures, validation_failures
Faults of kind "status" reply AWS-shaped errors: {"kind": "status", "status": 429} sends
  x-amzn-ErrorType: ThrottlingException and {"message": "Rate exceeded"}; "code" and
  "message" choose others; "style": "header" (default) | "type" (body __type
  "com.amazon...#Code") | "code" (body "code") picks where the code is written.
"""

import base64
import datetime
import gzip
import hashlib
import json
import os
import random
import re
import sys
import time
import uuid
from urllib.parse import unquote

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fakehttp  # noqa: E402

from botocore.auth import SigV4Auth  # noqa: E402
from botocore.awsrequest import AWSRequest  # noqa: E402
from botocore.credentials import Credentials  # noqa: E402
from botocore.exceptions import ParamValidationError  # noqa: E402
from botocore.loaders import Loader  # noqa: E402
from botocore.model import ServiceModel  # noqa: E402
from botocore.validate import validate_parameters  # noqa: E402

SERVICE = "emr-containers"
ERROR_NS = "http://internal.amazon.com/coral/com.amazon.emr.containers/"
TERMINAL_JOB = ("COMPLETED", "FAILED", "CANCELLED")
JOB_STATES = ("PENDING", "SUBMITTED", "RUNNING", "FAILED", "CANCELLED", "CANCEL_PENDING", "COMPLETED")
CLUSTER_STATES = ("RUNNING", "TERMINATING", "TERMINATED", "ARRESTED")

DEFAULT_FAULT_CODES = {
    429: ("ThrottlingException", "Rate exceeded"),
    500: ("InternalServerException", "Internal server error"),
    502: (None, "Bad Gateway"),
    503: ("ServiceUnavailableException", "Service unavailable"),
    504: (None, "Gateway Timeout"),
}


class ApiError(Exception):
    def __init__(self, status, code, message):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def iso(t):
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(v):
    """A query/body timestamp (ISO 8601 text or epoch seconds) as epoch seconds."""
    if isinstance(v, (int, float)):
        return float(v)
    s = str(v)
    if re.fullmatch(r"-?\d+(\.\d+)?", s):
        return float(s)
    s = s.replace("Z", "+00:00")
    return datetime.datetime.fromisoformat(s).timestamp()


def new_id(n):
    alphabet = "0123456789abcdefghijklmnopqrstuvwxyz"
    return "".join(random.choice(alphabet) for _ in range(n))


class FakeEmr(fakehttp.FakeServer):
    name = "fake_emr"
    serialize = True

    @classmethod
    def add_arguments(cls, parser):
        parser.add_argument("--access-key", default="AKIDEXAMPLE")
        parser.add_argument("--secret-key", default="wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
        parser.add_argument("--session-token", default=None)
        parser.add_argument("--region", default="us-east-1")
        parser.add_argument("--account", default="123456789012")
        parser.add_argument("--job-seconds", type=float, default=1.0)
        parser.add_argument("--pending-seconds", type=float, default=None)
        parser.add_argument("--submitted-seconds", type=float, default=None)
        parser.add_argument("--running-seconds", type=float, default=None)
        parser.add_argument("--final-state", default="COMPLETED", choices=TERMINAL_JOB)
        parser.add_argument("--cancel-seconds", type=float, default=0.2)
        parser.add_argument("--terminate-seconds", type=float, default=0.5)
        parser.add_argument("--page-size", type=int, default=50)
        parser.add_argument("--model", default=None)
        parser.add_argument("--no-verify-signature", action="store_true")

    def __init__(self, args):
        super().__init__(args)
        if args.model:
            opener = gzip.open if args.model.endswith(".gz") else open
            with opener(args.model, "rt", encoding="utf-8") as f:
                self.model = ServiceModel(json.load(f), SERVICE)
        else:
            self.model = ServiceModel(Loader().load_service_model(SERVICE, "service-2"), SERVICE)
        self.routes = []
        for op_name in self.model.operation_names:
            op = self.model.operation_model(op_name)
            uri = op.http["requestUri"]
            path = uri.split("?", 1)[0]
            rx = "^" + re.sub(r"\\\{(\w+)(\\\+)?\\\}",
                              lambda m: "(?P<%s>%s)" % (m.group(1), ".+" if m.group(2) else "[^/]+"),
                              re.escape(path)) + "$"
            self.routes.append((op.http["method"], re.compile(rx), op))
        self.phase = {
            "PENDING": args.pending_seconds if args.pending_seconds is not None else args.job_seconds,
            "SUBMITTED": args.submitted_seconds if args.submitted_seconds is not None else args.job_seconds,
            "RUNNING": args.running_seconds if args.running_seconds is not None else args.job_seconds,
        }
        self._pattern_cache = {}
        self.reset()

    # ---- state -----------------------------------------------------------------------------
    def reset(self):
        self.clusters = {}        # id -> dict
        self.jobs = {}            # id -> dict
        self.templates = {}
        self.endpoints = {}
        self.tokens = {}          # (operation, clientToken) -> (params digest, result)
        self.signature_failures = 0
        self.validation_failures = 0

    def stats(self):
        return {"virtual_clusters": len(self.clusters), "job_runs": len(self.jobs),
                "signature_failures": self.signature_failures,
                "validation_failures": self.validation_failures}

    def arn(self, rest):
        return "arn:aws:emr-containers:%s:%s:/%s" % (self.args.region, self.args.account, rest)

    def advance_job(self, job, now=None):
        """Moves a job along its automatic lifecycle up to now."""
        now = time.time() if now is None else now
        while job["auto"]:
            st = job["state"]
            if st in TERMINAL_JOB:
                return
            if st == "CANCEL_PENDING":
                due = job["since"] + self.args.cancel_seconds
                nxt = "CANCELLED"
            else:
                due = job["since"] + self.phase[st]
                nxt = {"PENDING": "SUBMITTED", "SUBMITTED": "RUNNING",
                       "RUNNING": self.args.final_state}[st]
            if now < due:
                return
            self.set_job_state(job, nxt, due)

    def set_job_state(self, job, state, at=None):
        at = time.time() if at is None else at
        job["state"] = state
        job["since"] = at
        w = job["wire"]
        w["state"] = state
        if state in TERMINAL_JOB:
            w["finishedAt"] = iso(at)
            if state == "FAILED":
                w.setdefault("failureReason", "USER_ERROR")
                w.setdefault("stateDetails", "Job failed (fake)")
            if state == "CANCELLED":
                w.setdefault("stateDetails", "Job run cancelled")

    def advance_cluster(self, vc, now=None):
        now = time.time() if now is None else now
        if vc["auto"] and vc["state"] == "TERMINATING" and now >= vc["since"] + self.args.terminate_seconds:
            vc["state"] = "TERMINATED"
            vc["wire"]["state"] = "TERMINATED"

    # ---- signature ---------------------------------------------------------------------------
    def check_signature(self, req):
        auth = req.header("Authorization")
        amz_date = req.header("X-Amz-Date")
        if not auth or not amz_date:
            raise ApiError(403, "IncompleteSignatureException",
                           "Authorization header requires 'Credential', 'Signature' and 'SignedHeaders'"
                           " parameters, and an X-Amz-Date header.")
        m = re.fullmatch(r"AWS4-HMAC-SHA256 Credential=([^/,\s]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request,"
                         r"\s*SignedHeaders=([a-z0-9;\-]+),\s*Signature=([0-9a-f]{64})", auth.strip())
        if not m:
            raise ApiError(403, "IncompleteSignatureException", "Malformed Authorization header.")
        key, day, region, service, signed, signature = m.groups()
        if key != self.args.access_key:
            raise ApiError(403, "UnrecognizedClientException",
                           "The security token included in the request is invalid.")
        if day != amz_date[:8] or region != self.args.region or service != SERVICE:
            raise ApiError(403, "InvalidSignatureException",
                           "Credential should be scoped to a valid region and service "
                           "(%s, %s) and the request date." % (self.args.region, SERVICE))
        if self.args.session_token is not None:
            tok = req.header("X-Amz-Security-Token")
            if tok != self.args.session_token:
                raise ApiError(403, "UnrecognizedClientException",
                               "The security token included in the request is invalid.")
        names = signed.split(";")
        if "host" not in names:
            raise ApiError(403, "InvalidSignatureException", "The host header must be signed.")
        headers = []
        for name in names:
            vals = [v for n, v in req.headers if n.lower() == name]
            if not vals:
                raise ApiError(403, "InvalidSignatureException",
                               "Signed header %s is missing from the request." % name)
            headers.append((name, ",".join(vals)))
        host = req.header("Host")
        url = "http://%s%s" % (host, req.target)
        areq = AWSRequest(method=req.method, url=url, data=req.body)
        for n, v in headers:
            areq.headers[n] = v
        areq.context["timestamp"] = amz_date
        token = req.header("X-Amz-Security-Token") if "x-amz-security-token" in names else None
        auth_obj = SigV4Auth(Credentials(self.args.access_key, self.args.secret_key, token),
                             SERVICE, self.args.region)
        hts = auth_obj.headers_to_sign(areq)
        if auth_obj.signed_headers(hts) != signed:
            raise ApiError(403, "InvalidSignatureException",
                           "SignedHeaders %s do not cover the request's headers." % signed)
        canonical = auth_obj.canonical_request(areq)
        sts = auth_obj.string_to_sign(areq, canonical)
        expected = auth_obj.signature(sts, areq)
        if expected != signature:
            raise ApiError(403, "InvalidSignatureException",
                           "The request signature we calculated does not match the signature you "
                           "provided. Check your AWS Secret Access Key and signing method.")

    # ---- routing and validation ------------------------------------------------------------
    def route(self, req):
        for method, rx, op in self.routes:
            if method != req.method:
                continue
            m = rx.match(req.path)
            if m:
                return op, {k: unquote(v) for k, v in m.groupdict().items()}
        raise ApiError(404, "UnknownOperationException",
                       "No operation matches %s %s." % (req.method, req.path))

    def request_params(self, req, op, labels):
        shape = op.input_shape
        params = {}
        if shape is None:
            return params
        for mname, mshape in shape.members.items():
            loc = mshape.serialization.get("location")
            lname = mshape.serialization.get("name", mname)
            if loc == "uri":
                if lname in labels:
                    params[mname] = labels[lname]
            elif loc == "querystring":
                if lname in req.params:
                    vals = req.params[lname]
                    if mshape.type_name == "list":
                        params[mname] = [self.scalar(mshape.member, v) for v in vals]
                    else:
                        params[mname] = self.scalar(mshape, vals[-1])
            elif loc == "header":
                v = req.header(lname)
                if v is not None:
                    params[mname] = v
        has_body = any(not m.serialization.get("location") for m in shape.members.values())
        if req.body:
            ctype = req.header("Content-Type", "")
            if not ctype.startswith("application/json"):
                raise ApiError(415, "UnsupportedMediaTypeException",
                               "Content-Type must be application/json, got %r." % ctype)
            try:
                doc = json.loads(req.body.decode("utf-8"))
            except (ValueError, UnicodeDecodeError) as e:
                raise ApiError(400, "SerializationException", "Body is not valid JSON: %s" % e)
            if not isinstance(doc, dict):
                raise ApiError(400, "SerializationException", "Body must be a JSON object.")
            if not has_body and doc:
                raise ApiError(400, "ValidationException", "%s takes no body." % op.name)
            for k, v in doc.items():
                params[k] = v
        return params

    @staticmethod
    def scalar(shape, text):
        t = shape.type_name
        if t in ("integer", "long"):
            try:
                return int(text)
            except ValueError:
                return text
        if t == "boolean":
            return {"true": True, "false": False}.get(text, text)
        return text

    def pattern(self, p):
        rx = self._pattern_cache.get(p)
        if rx is None:
            rx = re.compile(p, re.DOTALL)
            self._pattern_cache[p] = rx
        return rx

    def service_checks(self, shape, value, path, problems):
        """Checks botocore leaves to the service: enum, max, pattern."""
        t = shape.type_name
        md = shape.metadata
        if t == "structure" and isinstance(value, dict):
            for k, v in value.items():
                if k in shape.members:
                    self.service_checks(shape.members[k], v, "%s.%s" % (path, k) if path else k, problems)
        elif t == "list" and isinstance(value, list):
            if "max" in md and len(value) > md["max"]:
                problems.append("%s: at most %d items" % (path, md["max"]))
            for i, v in enumerate(value):
                self.service_checks(shape.member, v, "%s[%d]" % (path, i), problems)
        elif t == "map" and isinstance(value, dict):
            if "max" in md and len(value) > md["max"]:
                problems.append("%s: at most %d entries" % (path, md["max"]))
            for k, v in value.items():
                self.service_checks(shape.key, k, "%s.%s(key)" % (path, k), problems)
                self.service_checks(shape.value, v, "%s.%s" % (path, k), problems)
        elif t == "string" and isinstance(value, str):
            if shape.enum and value not in shape.enum:
                problems.append("%s: value must be one of %s" % (path, ", ".join(shape.enum)))
            if "max" in md and len(value) > md["max"]:
                problems.append("%s: length must be at most %d" % (path, md["max"]))
            if "pattern" in md and not self.pattern(md["pattern"]).fullmatch(value):
                problems.append("%s: must satisfy regular expression pattern: %s" % (path, md["pattern"]))

    def validate(self, op, params):
        if op.input_shape is None:
            return
        try:
            validate_parameters(params, op.input_shape)
        except ParamValidationError as e:
            raise ApiError(400, "ValidationException", str(e).replace("\n", " "))
        problems = []
        self.service_checks(op.input_shape, params, "", problems)
        if problems:
            raise ApiError(400, "ValidationException",
                           "%d validation error(s) detected: %s" % (len(problems), "; ".join(problems)))

    # ---- replies ---------------------------------------------------------------------------
    @staticmethod
    def error_reply(status, code, message, style="header"):
        rid = str(uuid.uuid4())
        headers = [("x-amzn-RequestId", rid)]
        body = {"message": message}
        if code:
            if style == "type":
                body["__type"] = "com.amazonaws.emrcontainers#" + code
            elif style == "code":
                body["code"] = code
            else:
                headers.append(("x-amzn-ErrorType", "%s:%s" % (code, ERROR_NS)))
        return fakehttp.json_reply(status, body, headers)

    def fault_reply(self, fault, req):
        status = int(fault.get("status", 500))
        if "body" in fault:
            return super().fault_reply(fault, req)
        code, message = DEFAULT_FAULT_CODES.get(status, (None, "injected fault"))
        code = fault.get("code", code)
        message = fault.get("message", message)
        status_, headers, body = self.error_reply(status, code, message, fault.get("style", "header"))
        headers = list(headers) + fakehttp._header_list(fault.get("headers"))
        return status_, headers, body

    def handle(self, req):
        try:
            if not self.args.no_verify_signature:
                try:
                    self.check_signature(req)
                except ApiError:
                    self.signature_failures += 1
                    raise
            op, labels = self.route(req)
            params = self.request_params(req, op, labels)
            try:
                self.validate(op, params)
            except ApiError:
                self.validation_failures += 1
                raise
            fn = getattr(self, "op_" + op.name, None)
            if fn is None:
                raise ApiError(501, "NotImplemented", "%s is not implemented by the fake." % op.name)
            result = fn(params)
            return fakehttp.json_reply(200, result, [("x-amzn-RequestId", str(uuid.uuid4()))])
        except ApiError as e:
            return self.error_reply(e.status, e.code, e.message)

    # ---- idempotency -------------------------------------------------------------------------
    def idempotent(self, op_name, params, create):
        token = params.get("clientToken")
        digest = hashlib.sha256(json.dumps({k: v for k, v in params.items() if k != "clientToken"},
                                           sort_keys=True).encode()).hexdigest()
        key = (op_name, token)
        if key in self.tokens:
            seen_digest, result = self.tokens[key]
            if seen_digest != digest:
                raise ApiError(400, "ValidationException",
                               "The client token %s was already used with different parameters." % token)
            return result
        result = create()
        self.tokens[key] = (digest, result)
        return result

    # ---- virtual clusters ------------------------------------------------------------------
    def cluster(self, vid):
        vc = self.clusters.get(vid)
        if vc is None:
            raise ApiError(400, "ResourceNotFoundException", "Virtual cluster %s doesn't exist." % vid)
        self.advance_cluster(vc)
        return vc

    def op_CreateVirtualCluster(self, p):
        def create():
            for vc in self.clusters.values():
                self.advance_cluster(vc)
                if vc["wire"]["name"] == p["name"] and vc["state"] == "RUNNING":
                    raise ApiError(400, "ValidationException",
                                   "A virtual cluster already exists with the given name %s." % p["name"])
            vid = new_id(25)
            now = time.time()
            wire = {"id": vid, "name": p["name"], "arn": self.arn("virtualclusters/" + vid),
                    "state": "RUNNING", "containerProvider": p["containerProvider"],
                    "createdAt": iso(now), "tags": dict(p.get("tags") or {})}
            if "securityConfigurationId" in p:
                wire["securityConfigurationId"] = p["securityConfigurationId"]
            self.clusters[vid] = {"state": "RUNNING", "since": now, "auto": True, "wire": wire}
            return {"id": vid, "name": p["name"], "arn": wire["arn"]}
        return self.idempotent("CreateVirtualCluster", p, create)

    def op_DescribeVirtualCluster(self, p):
        return {"virtualCluster": self.cluster(p["id"])["wire"]}

    def op_DeleteVirtualCluster(self, p):
        vc = self.clusters.get(p["id"])
        if vc is None:
            raise ApiError(400, "ValidationException", "Virtual cluster %s doesn't exist." % p["id"])
        self.advance_cluster(vc)
        if vc["state"] in ("RUNNING", "ARRESTED"):
            vc["state"] = "TERMINATING"
            vc["wire"]["state"] = "TERMINATING"
            vc["since"] = time.time()
        return {"id": p["id"]}

    def page(self, items, p, key):
        size = p.get("maxResults") or self.args.page_size
        start = 0
        if p.get("nextToken"):
            try:
                start = int(base64.b64decode(p["nextToken"]).decode())
            except (ValueError, UnicodeDecodeError):
                raise ApiError(400, "ValidationException", "Invalid pagination token.")
        out = {key: items[start:start + size]}
        if start + size < len(items):
            out["nextToken"] = base64.b64encode(str(start + size).encode()).decode()
        return out

    @staticmethod
    def created_filter(w, p):
        t = parse_time(w["createdAt"])
        if "createdAfter" in p and t < parse_time(p["createdAfter"]):
            return False
        if "createdBefore" in p and t > parse_time(p["createdBefore"]):
            return False
        return True

    def op_ListVirtualClusters(self, p):
        items = []
        for vc in self.clusters.values():
            self.advance_cluster(vc)
            w = vc["wire"]
            if "containerProviderId" in p and w["containerProvider"].get("id") != p["containerProviderId"]:
                continue
            if "containerProviderType" in p and w["containerProvider"].get("type") != p["containerProviderType"]:
                continue
            if p.get("states") and w["state"] not in p["states"]:
                continue
            if not self.created_filter(w, p):
                continue
            items.append(w)
        return self.page(items, p, "virtualClusters")

    # ---- job runs ----------------------------------------------------------------------------
    def job(self, vid, jid):
        job = self.jobs.get(jid)
        if job is None or job["wire"]["virtualClusterId"] != vid:
            raise ApiError(400, "ResourceNotFoundException", "Job run %s doesn't exist." % jid)
        self.advance_job(job)
        return job

    def op_StartJobRun(self, p):
        vc = self.cluster(p["virtualClusterId"])

        def create():
            if vc["state"] != "RUNNING":
                raise ApiError(400, "ValidationException",
                               "Virtual cluster %s is not in a RUNNING state." % p["virtualClusterId"])
            if "jobTemplateId" in p:
                if p["jobTemplateId"] not in self.templates:
                    raise ApiError(400, "ResourceNotFoundException",
                                   "Job template %s doesn't exist." % p["jobTemplateId"])
            else:
                for k in ("executionRoleArn", "releaseLabel", "jobDriver"):
                    if k not in p:
                        raise ApiError(400, "ValidationException",
                                       "%s is required when no job template is given." % k)
            jid = new_id(19)
            now = time.time()
            wire = {"id": jid, "name": p.get("name", ""), "virtualClusterId": p["virtualClusterId"],
                    "arn": self.arn("virtualclusters/%s/jobruns/%s" % (p["virtualClusterId"], jid)),
                    "state": "PENDING", "clientToken": p["clientToken"],
                    "createdAt": iso(now),
                    "createdBy": "arn:aws:iam::%s:user/fake" % self.args.account,
                    "tags": dict(p.get("tags") or {})}
            for k in ("executionRoleArn", "releaseLabel", "jobDriver", "configurationOverrides",
                      "retryPolicyConfiguration"):
                if k in p:
                    wire[k] = p[k]
            if not wire["name"]:
                del wire["name"]
            self.jobs[jid] = {"state": "PENDING", "since": now, "auto": True, "wire": wire}
            out = {"id": jid, "virtualClusterId": p["virtualClusterId"], "arn": wire["arn"]}
            if "name" in wire:
                out["name"] = wire["name"]
            return out
        return self.idempotent("StartJobRun", p, create)

    def op_DescribeJobRun(self, p):
        return {"jobRun": self.job(p["virtualClusterId"], p["id"])["wire"]}

    def op_CancelJobRun(self, p):
        job = self.jobs.get(p["id"])
        if job is None or job["wire"]["virtualClusterId"] != p["virtualClusterId"]:
            raise ApiError(400, "ValidationException", "Job run %s doesn't exist." % p["id"])
        self.advance_job(job)
        if job["state"] in TERMINAL_JOB:
            raise ApiError(400, "ValidationException",
                           "Job run %s is not in a cancellable state (%s)." % (p["id"], job["state"]))
        if job["state"] != "CANCEL_PENDING":
            self.set_job_state(job, "CANCEL_PENDING")
            job["auto"] = True      # cancellation completes on its own, scripted job or not
        return {"id": p["id"], "virtualClusterId": p["virtualClusterId"]}

    def op_ListJobRuns(self, p):
        self.cluster(p["virtualClusterId"])
        items = []
        for job in self.jobs.values():
            w = job["wire"]
            if w["virtualClusterId"] != p["virtualClusterId"]:
                continue
            self.advance_job(job)
            if p.get("states") and w["state"] not in p["states"]:
                continue
            if "name" in p and w.get("name") != p["name"]:
                continue
            if not self.created_filter(w, p):
                continue
            items.append(w)
        return self.page(items, p, "jobRuns")

    # ---- job templates -------------------------------------------------------------------------
    def op_CreateJobTemplate(self, p):
        def create():
            tid = new_id(20)
            now = time.time()
            wire = {"id": tid, "name": p["name"], "arn": self.arn("jobtemplates/" + tid),
                    "createdAt": iso(now), "createdBy": "arn:aws:iam::%s:user/fake" % self.args.account,
                    "tags": dict(p.get("tags") or {}), "jobTemplateData": p["jobTemplateData"]}
            if "kmsKeyArn" in p:
                wire["kmsKeyArn"] = p["kmsKeyArn"]
            self.templates[tid] = wire
            return {"id": tid, "name": p["name"], "arn": wire["arn"], "createdAt": wire["createdAt"]}
        return self.idempotent("CreateJobTemplate", p, create)

    def template(self, tid):
        t = self.templates.get(tid)
        if t is None:
            raise ApiError(400, "ResourceNotFoundException", "Job template %s doesn't exist." % tid)
        return t

    def op_DescribeJobTemplate(self, p):
        return {"jobTemplate": self.template(p["id"])}

    def op_DeleteJobTemplate(self, p):
        self.template(p["id"])
        del self.templates[p["id"]]
        return {"id": p["id"]}

    def op_ListJobTemplates(self, p):
        items = [t for t in self.templates.values() if self.created_filter(t, p)]
        return self.page(items, p, "templates")

    # ---- managed endpoints (kept simple: ACTIVE at once) -------------------------------------
    def op_CreateManagedEndpoint(self, p):
        self.cluster(p["virtualClusterId"])

        def create():
            eid = new_id(20)
            wire = {"id": eid, "name": p["name"], "virtualClusterId": p["virtualClusterId"],
                    "arn": self.arn("virtualclusters/%s/endpoints/%s" % (p["virtualClusterId"], eid)),
                    "type": p["type"], "state": "ACTIVE", "releaseLabel": p["releaseLabel"],
                    "executionRoleArn": p["executionRoleArn"], "createdAt": iso(time.time()),
                    "tags": dict(p.get("tags") or {})}
            self.endpoints[eid] = wire
            return {"id": eid, "name": p["name"], "arn": wire["arn"],
                    "virtualClusterId": p["virtualClusterId"]}
        return self.idempotent("CreateManagedEndpoint", p, create)

    def endpoint(self, vid, eid):
        e = self.endpoints.get(eid)
        if e is None or e["virtualClusterId"] != vid:
            raise ApiError(400, "ResourceNotFoundException", "Endpoint %s doesn't exist." % eid)
        return e

    def op_DescribeManagedEndpoint(self, p):
        return {"endpoint": self.endpoint(p["virtualClusterId"], p["id"])}

    def op_DeleteManagedEndpoint(self, p):
        e = self.endpoint(p["virtualClusterId"], p["id"])
        e["state"] = "TERMINATED"
        return {"id": p["id"], "virtualClusterId": p["virtualClusterId"]}

    def op_ListManagedEndpoints(self, p):
        items = [e for e in self.endpoints.values() if e["virtualClusterId"] == p["virtualClusterId"]
                 and (not p.get("states") or e["state"] in p["states"])
                 and (not p.get("types") or e["type"] in p["types"]) and self.created_filter(e, p)]
        return self.page(items, p, "endpoints")

    # ---- tags --------------------------------------------------------------------------------
    def tagged(self, arn):
        for coll in (self.clusters, self.jobs):
            for obj in coll.values():
                if obj["wire"]["arn"] == arn:
                    return obj["wire"]
        for coll in (self.templates, self.endpoints):
            for obj in coll.values():
                if obj["arn"] == arn:
                    return obj
        raise ApiError(400, "ResourceNotFoundException", "Resource %s doesn't exist." % arn)

    def op_ListTagsForResource(self, p):
        return {"tags": self.tagged(p["resourceArn"]).get("tags", {})}

    def op_TagResource(self, p):
        self.tagged(p["resourceArn"]).setdefault("tags", {}).update(p["tags"])
        return {}

    def op_UntagResource(self, p):
        tags = self.tagged(p["resourceArn"]).setdefault("tags", {})
        for k in p["tagKeys"]:
            tags.pop(k, None)
        return {}

    # ---- control -----------------------------------------------------------------------------
    def control(self, req, name):
        m = re.fullmatch(r"jobs/([^/]+)/state", name)
        if m and req.method == "POST":
            job = self.jobs.get(m.group(1))
            if job is None:
                return fakehttp.json_reply(404, {"message": "no job %s" % m.group(1)})
            doc = req.json() or {}
            self.advance_job(job)
            if doc.get("auto"):
                job["auto"] = True
                job["since"] = time.time()
            if "state" in doc:
                if doc["state"] not in JOB_STATES:
                    return fakehttp.json_reply(400, {"message": "bad state %r" % doc["state"]})
                job["auto"] = bool(doc.get("auto"))
                for k in ("failureReason", "stateDetails"):
                    if k in doc:
                        job["wire"][k] = doc[k]
                self.set_job_state(job, doc["state"])
            return fakehttp.json_reply(200, {"jobRun": job["wire"]})
        m = re.fullmatch(r"clusters/([^/]+)/state", name)
        if m and req.method == "POST":
            vc = self.clusters.get(m.group(1))
            if vc is None:
                return fakehttp.json_reply(404, {"message": "no cluster %s" % m.group(1)})
            doc = req.json() or {}
            if doc.get("state") not in CLUSTER_STATES:
                return fakehttp.json_reply(400, {"message": "bad state %r" % doc.get("state")})
            vc["state"] = doc["state"]
            vc["wire"]["state"] = doc["state"]
            vc["since"] = time.time()
            vc["auto"] = bool(doc.get("auto", False))
            return fakehttp.json_reply(200, {"virtualCluster": vc["wire"]})
        if name == "state" and req.method == "GET":
            for job in self.jobs.values():
                self.advance_job(job)
            for vc in self.clusters.values():
                self.advance_cluster(vc)
            return fakehttp.json_reply(200, {
                "virtualClusters": [vc["wire"] for vc in self.clusters.values()],
                "jobRuns": [j["wire"] for j in self.jobs.values()],
                "jobTemplates": list(self.templates.values()),
            })
        return None


if __name__ == "__main__":
    fakehttp.main(FakeEmr)
