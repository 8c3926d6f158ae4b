"""fake_sfn: the Step Functions operations moto lacks, for emrflow's specs (fakehttp based).

    /usr/bin/python3 spec/support/fake_sfn.py [--page-size N] [--region R]   # prints "PORT <n>"

Protocol awsJson1_0 as AWS speaks it: POST /, X-Amz-Target AWSStepFunctions.<Operation>,
Content-Type application/x-amz-json-1.0; errors are {"__type": "...#Code", "message": ...}
with x-amzn-ErrorType and x-amzn-RequestId headers. Requests without a SigV4 Authorization
header for service "states" get 400 MissingAuthenticationTokenException / InvalidSignature.

Operations: CreateStateMachine, UpdateStateMachine, DescribeStateMachine (also on a version
ARN), ListStateMachines, PublishStateMachineVersion (idempotent per revision, as AWS
documents), ListStateMachineVersions (newest first), CreateStateMachineAlias,
UpdateStateMachineAlias, DescribeStateMachineAlias, ListStateMachineAliases,
ValidateStateMachineDefinition, TagResource, ListTagsForResource, StartExecution,
DescribeExecution, StopExecution, GetExecutionHistory. Lists page by --page-size (or the
request's maxResults). ValidateStateMachineDefinition checks what the specs need: JSON,
StartAt naming a state, each state's Type, Next targets (diagnostics shaped as AWS's: severity,
code, message, location). Executions do not run: a started one stays RUNNING until a spec
finishes it with POST /__fake/finish {"executionArn", "status", "output" | "error", "cause"};
StopExecution ends it ABORTED. Each execution's history follows what happened.
"""

import json
import os
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fakehttp  # noqa: E402

ACCOUNT = "123456789012"
PREFIX = "com.amazonaws.swf.service.v2.model#"
STATE_TYPES = {"Task", "Pass", "Choice", "Wait", "Succeed", "Fail", "Parallel", "Map"}


class ApiError(Exception):
    def __init__(self, code, message, status=400):
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


def diagnostics_of(text):
    """ValidateStateMachineDefinition's diagnostics for a definition text."""
    try:
        doc = json.loads(text)
    except ValueError as e:
        return [{"severity": "ERROR", "code": "INVALID_JSON_DESCRIPTION",
                 "message": "INVALID_JSON_DESCRIPTION: " + str(e)}]
    if not isinstance(doc, dict):
        return [{"severity": "ERROR", "code": "SCHEMA_VALIDATION_FAILED",
                 "message": "The definition must be a JSON object", "location": "/"}]
    out = []
    states = doc.get("States")
    if not isinstance(states, dict) or not states:
        out.append({"severity": "ERROR", "code": "SCHEMA_VALIDATION_FAILED",
                    "message": "These fields are required: [States]", "location": "/"})
        states = {}
    if doc.get("StartAt") not in states:
        out.append({"severity": "ERROR", "code": "MISSING_TRANSITION_TARGET",
                    "message": "Missing 'Next' target: %s" % doc.get("StartAt"), "location": "/StartAt"})
    for name, st in states.items():
        where = "/States/" + name
        if not isinstance(st, dict) or st.get("Type") not in STATE_TYPES:
            out.append({"severity": "ERROR", "code": "SCHEMA_VALIDATION_FAILED",
                        "message": "The field 'Type' should have one of these values: %s"
                        % sorted(STATE_TYPES), "location": where + "/Type"})
            continue
        nxt = st.get("Next")
        if nxt is not None and nxt not in states:
            out.append({"severity": "ERROR", "code": "MISSING_TRANSITION_TARGET",
                        "message": "Missing 'Next' target: %s" % nxt, "location": where + "/Next"})
    return out


class FakeSfn(fakehttp.FakeServer):
    name = "fake_sfn"
    serialize = True

    @classmethod
    def add_arguments(cls, parser):
        parser.add_argument("--page-size", type=int, default=100)
        parser.add_argument("--region", default="us-east-1")

    def __init__(self, args):
        super().__init__(args)
        self.page_size = args.page_size
        self.region = args.region
        self.reset()

    def reset(self):
        self.machines = {}       # arn -> record
        self.aliases = {}        # arn -> record
        self.executions = {}     # arn -> record
        self.tags = {}           # arn -> {key: value}

    def stats(self):
        return {"machines": len(self.machines), "executions": len(self.executions)}

    # --- helpers ------------------------------------------------------------

    def arn(self, kind, *parts):
        return "arn:aws:states:%s:%s:%s:%s" % (self.region, ACCOUNT, kind, ":".join(parts))

    def machine(self, arn):
        sm = self.machines.get(arn)
        if sm is None:
            raise ApiError("StateMachineDoesNotExist", "State Machine Does Not Exist: '%s'" % arn)
        return sm

    def page(self, items, body, key):
        size = body.get("maxResults") or self.page_size
        start = int(body.get("nextToken") or 0)
        out = {key: items[start:start + size]}
        if start + size < len(items):
            out["nextToken"] = str(start + size)
        return out

    def publish(self, sm, description=None):
        for v in sm["versions"]:
            if v["revisionId"] == sm["revisionId"]:
                return v
        v = {"number": len(sm["versions"]) + 1, "revisionId": sm["revisionId"],
             "definition": sm["definition"], "roleArn": sm["roleArn"], "created": time.time(),
             "description": description}
        v["arn"] = "%s:%d" % (sm["arn"], v["number"])
        sm["versions"].append(v)
        return v

    def version(self, arn):
        base, _, num = arn.rpartition(":")
        sm = self.machines.get(base)
        if sm and num.isdigit():
            for v in sm["versions"]:
                if v["number"] == int(num):
                    return sm, v
        raise ApiError("StateMachineDoesNotExist", "State Machine Does Not Exist: '%s'" % arn)

    def event(self, x, etype, details_key=None, details=None):
        ev = {"timestamp": time.time(), "type": etype, "id": len(x["events"]) + 1,
              "previousEventId": len(x["events"])}
        if details_key:
            ev[details_key] = details
        x["events"].append(ev)

    # --- operations ---------------------------------------------------------

    def op_CreateStateMachine(self, b):
        name = b["name"]
        arn = self.arn("stateMachine", name)
        if arn in self.machines:
            raise ApiError("StateMachineAlreadyExists", "State Machine Already Exists: '%s'" % arn)
        if diagnostics_of(b["definition"]):
            raise ApiError("InvalidDefinition", "Invalid State Machine Definition: '%s'"
                           % diagnostics_of(b["definition"])[0]["message"])
        sm = {"arn": arn, "name": name, "definition": b["definition"], "roleArn": b["roleArn"],
              "type": b.get("type", "STANDARD"), "created": time.time(), "versions": [],
              "loggingConfiguration": b.get("loggingConfiguration", {"level": "OFF"}),
              "tracingConfiguration": b.get("tracingConfiguration", {"enabled": False}),
              "revisionId": uuid.uuid4().hex}
        self.machines[arn] = sm
        self.tags[arn] = {t["key"]: t.get("value", "") for t in b.get("tags", [])}
        out = {"stateMachineArn": arn, "creationDate": sm["created"]}
        if b.get("publish"):
            out["stateMachineVersionArn"] = self.publish(sm, b.get("versionDescription"))["arn"]
        return out

    def op_UpdateStateMachine(self, b):
        sm = self.machine(b["stateMachineArn"])
        for k in ("definition", "roleArn", "loggingConfiguration", "tracingConfiguration"):
            if k in b:
                sm[k] = b[k]
        sm["revisionId"] = uuid.uuid4().hex
        out = {"updateDate": time.time(), "revisionId": sm["revisionId"]}
        if b.get("publish"):
            out["stateMachineVersionArn"] = self.publish(sm, b.get("versionDescription"))["arn"]
        return out

    def op_DescribeStateMachine(self, b):
        arn = b["stateMachineArn"]
        if arn in self.machines:
            sm = self.machines[arn]
            return {"stateMachineArn": arn, "name": sm["name"], "status": "ACTIVE",
                    "definition": sm["definition"], "roleArn": sm["roleArn"], "type": sm["type"],
                    "creationDate": sm["created"], "revisionId": sm["revisionId"],
                    "loggingConfiguration": sm["loggingConfiguration"],
                    "tracingConfiguration": sm["tracingConfiguration"]}
        sm, v = self.version(arn)
        return {"stateMachineArn": v["arn"], "name": sm["name"], "status": "ACTIVE",
                "definition": v["definition"], "roleArn": v["roleArn"], "type": sm["type"],
                "creationDate": v["created"], "revisionId": v["revisionId"]}

    def op_ListStateMachines(self, b):
        items = [{"stateMachineArn": sm["arn"], "name": sm["name"], "type": sm["type"],
                  "creationDate": sm["created"]} for sm in self.machines.values()]
        return self.page(items, b, "stateMachines")

    def op_PublishStateMachineVersion(self, b):
        sm = self.machine(b["stateMachineArn"])
        if b.get("revisionId") and b["revisionId"] != sm["revisionId"]:
            raise ApiError("ConflictException", "revisionId does not match the current revision")
        v = self.publish(sm, b.get("description"))
        return {"stateMachineVersionArn": v["arn"], "creationDate": v["created"]}

    def op_ListStateMachineVersions(self, b):
        sm = self.machine(b["stateMachineArn"])
        items = [{"stateMachineVersionArn": v["arn"], "creationDate": v["created"]}
                 for v in reversed(sm["versions"])]
        return self.page(items, b, "stateMachineVersions")

    def check_routing(self, routing):
        if not isinstance(routing, list) or not 1 <= len(routing) <= 2:
            raise ApiError("ValidationException", "routingConfiguration must hold 1 or 2 versions")
        if sum(r.get("weight", 0) for r in routing) != 100:
            raise ApiError("ValidationException", "routingConfiguration weights must add up to 100")
        for r in routing:
            self.version(r["stateMachineVersionArn"])

    def op_CreateStateMachineAlias(self, b):
        routing = b["routingConfiguration"]
        self.check_routing(routing)
        sm_arn = routing[0]["stateMachineVersionArn"].rpartition(":")[0]
        arn = sm_arn + ":" + b["name"]
        if arn in self.aliases:
            raise ApiError("ConflictException", "Alias already exists: '%s'" % arn)
        now = time.time()
        self.aliases[arn] = {"arn": arn, "name": b["name"], "routing": routing, "created": now,
                             "updated": now, "description": b.get("description"), "machine": sm_arn}
        return {"stateMachineAliasArn": arn, "creationDate": now}

    def op_UpdateStateMachineAlias(self, b):
        alias = self.aliases.get(b["stateMachineAliasArn"])
        if alias is None:
            raise ApiError("ResourceNotFound", "Alias not found: '%s'" % b["stateMachineAliasArn"])
        if "routingConfiguration" in b:
            self.check_routing(b["routingConfiguration"])
            alias["routing"] = b["routingConfiguration"]
        alias["updated"] = time.time()
        return {"updateDate": alias["updated"]}

    def op_DescribeStateMachineAlias(self, b):
        alias = self.aliases.get(b["stateMachineAliasArn"])
        if alias is None:
            raise ApiError("ResourceNotFound", "Alias not found: '%s'" % b["stateMachineAliasArn"])
        return {"stateMachineAliasArn": alias["arn"], "name": alias["name"],
                "routingConfiguration": alias["routing"], "creationDate": alias["created"],
                "updateDate": alias["updated"]}

    def op_ListStateMachineAliases(self, b):
        self.machine(b["stateMachineArn"])
        items = [{"stateMachineAliasArn": a["arn"], "creationDate": a["created"]}
                 for a in self.aliases.values() if a["machine"] == b["stateMachineArn"]]
        return self.page(items, b, "stateMachineAliases")

    def op_ValidateStateMachineDefinition(self, b):
        diags = diagnostics_of(b["definition"])
        return {"result": "FAIL" if diags else "OK", "diagnostics": diags, "truncated": False}

    def op_TagResource(self, b):
        self.machine(b["resourceArn"])
        for t in b["tags"]:
            self.tags.setdefault(b["resourceArn"], {})[t["key"]] = t.get("value", "")
        return {}

    def op_ListTagsForResource(self, b):
        tags = self.tags.get(b["resourceArn"], {})
        return {"tags": [{"key": k, "value": v} for k, v in tags.items()]}

    def target_machine(self, arn):
        if arn in self.machines:
            return self.machines[arn]
        if arn in self.aliases:
            return self.machines[self.aliases[arn]["machine"]]
        return self.version(arn)[0]

    def op_StartExecution(self, b):
        sm = self.target_machine(b["stateMachineArn"])
        name = b.get("name") or uuid.uuid4().hex
        kind = "express" if sm["type"] == "EXPRESS" else "execution"   # as AWS names them
        arn = "arn:aws:states:%s:%s:%s:%s:%s" % (self.region, ACCOUNT, kind, sm["name"], name)
        if arn in self.executions:
            raise ApiError("ExecutionAlreadyExists", "Execution Already Exists: '%s'" % arn)
        x = {"arn": arn, "machine": sm["arn"], "name": name, "status": "RUNNING",
             "start": time.time(), "input": b.get("input", "{}"), "events": []}
        self.executions[arn] = x
        self.event(x, "ExecutionStarted", "executionStartedEventDetails",
                   {"input": x["input"], "roleArn": sm["roleArn"]})
        return {"executionArn": arn, "startDate": x["start"]}

    def execution(self, arn):
        x = self.executions.get(arn)
        if x is None:
            raise ApiError("ExecutionDoesNotExist", "Execution Does Not Exist: '%s'" % arn)
        return x

    def op_DescribeExecution(self, b):
        x = self.execution(b["executionArn"])
        out = {"executionArn": x["arn"], "stateMachineArn": x["machine"], "name": x["name"],
               "status": x["status"], "startDate": x["start"], "input": x["input"]}
        for k in ("stopDate", "output", "error", "cause"):
            if k in x:
                out[k] = x[k]
        return out

    def finish(self, x, status, output=None, error=None, cause=None):
        x["status"], x["stopDate"] = status, time.time()
        if status == "SUCCEEDED":
            x["output"] = output if output is not None else "{}"
            self.event(x, "ExecutionSucceeded", "executionSucceededEventDetails", {"output": x["output"]})
            return
        for k, v in (("error", error), ("cause", cause)):
            if v is not None:
                x[k] = v
        etype = {"FAILED": "ExecutionFailed", "ABORTED": "ExecutionAborted",
                 "TIMED_OUT": "ExecutionTimedOut"}[status]
        key = etype[0].lower() + etype[1:] + "EventDetails"
        self.event(x, etype, key, {k: x[k] for k in ("error", "cause") if k in x})

    def op_StopExecution(self, b):
        x = self.execution(b["executionArn"])
        if x["status"] == "RUNNING":
            self.finish(x, "ABORTED", error=b.get("error"), cause=b.get("cause"))
        return {"stopDate": x["stopDate"]}

    def op_GetExecutionHistory(self, b):
        x = self.execution(b["executionArn"])
        events = list(reversed(x["events"])) if b.get("reverseOrder") else x["events"]
        return self.page(events, b, "events")

    # --- plumbing -----------------------------------------------------------

    def control(self, req, name):
        if name == "finish":
            b = req.json()
            x = self.execution(b["executionArn"])
            for i, st in enumerate(b.get("states", [])):
                self.event(x, "PassStateEntered", "stateEnteredEventDetails", {"name": st})
                self.event(x, "PassStateExited", "stateExitedEventDetails", {"name": st})
            self.finish(x, b["status"], b.get("output"), b.get("error"), b.get("cause"))
            return fakehttp.json_reply(200, {"ok": True})
        return None

    def handle(self, req):
        rid = uuid.uuid4().hex
        try:
            auth = req.header("Authorization", "")
            if not auth.startswith("AWS4-HMAC-SHA256 Credential="):
                raise ApiError("MissingAuthenticationTokenException", "Missing Authentication Token")
            if "/states/aws4_request" not in auth:
                raise ApiError("InvalidSignatureException", "Credential should be scoped to correct service: 'states'")
            target = req.header("X-Amz-Target", "")
            if req.method != "POST" or req.path != "/" or not target.startswith("AWSStepFunctions."):
                raise ApiError("UnknownOperationException", "Unknown operation %s" % target)
            if req.header("Content-Type") != "application/x-amz-json-1.0":
                raise ApiError("SerializationException", "Content-Type must be application/x-amz-json-1.0")
            handler = getattr(self, "op_" + target.split(".", 1)[1], None)
            if handler is None:
                raise ApiError("UnknownOperationException", "Unknown operation %s" % target)
            try:
                body = req.json() or {}
            except ValueError:
                raise ApiError("SerializationException", "the body is not JSON")
            try:
                out = handler(body)
            except KeyError as e:
                raise ApiError("ValidationException", "missing member %s" % e)
            return 200, self.headers(rid), out
        except ApiError as e:
            return e.status, self.headers(rid), {"__type": PREFIX + e.code, "message": e.message}

    @staticmethod
    def headers(rid):
        return [("Content-Type", "application/x-amz-json-1.0"), ("x-amzn-RequestId", rid)]


if __name__ == "__main__":
    fakehttp.main(FakeSfn)
