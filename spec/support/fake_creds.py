"""fake_creds: STS, EC2 IMDSv2 and container credentials in one loopback process.

Run by /usr/bin/python3 (Debian's botocore verifies SigV4). Built on fakehttp (see its
docstring for the framework, faults and the built-in /__fake/ endpoints).

  STS (Query API, POST / with a form body, XML replies):
    AssumeRole                 SigV4 (service "sts") verified with botocore against the secret of
                               the access key: the --key ones (AKID:SECRET), the ones POSTed to
                               /__fake/keys, or ones this fake handed out (then the session token
                               must match too). Bad signature -> 403 SignatureDoesNotMatch;
                               unknown key -> 403 InvalidClientTokenId; role in deny_roles ->
                               403 AccessDenied.
    AssumeRoleWithWebIdentity  unsigned; WebIdentityToken must equal web_token, else 400
                               InvalidIdentityToken (with echo_token_in_error the message quotes
                               the token, to test that clients redact it).
  IMDSv2:
    PUT  /latest/api/token      needs X-aws-ec2-metadata-token-ttl-seconds (1..21600)
    GET  /latest/meta-data/iam/security-credentials/[ROLE]  needs a valid X-aws-ec2-metadata-token
                               (else 401); lists imds_role, or 404 when imds_role is null.
  Container (ECS / EKS Pod Identity):
    GET  /container/... or /v1/credentials   Authorization must equal container_token (when
                               container_token is not null), else 401.

  Every credential handed out: AccessKeyId ASIAFAKE<n>, a random secret and token, Expiration
  now + expiration_seconds (now = the "now" setting when set, else the real clock).

Control (JSON):
  POST /__fake/config {expiration_seconds, web_token, container_token, imds_role, deny_roles,
                       echo_token_in_error, now, check_time_skew}   -> the whole config
  GET  /__fake/config
  POST /__fake/keys   {"AKID": "SECRET", ...}                       -> {"keys": n}
  POST /__fake/expire_imds_tokens                                   -> every IMDS token is revoked
  GET  /__fake/issued  -> {"issued": [{"access_key_id", "secret_access_key", "session_token",
                          "expiration", "via"}...]}  (so specs can compare what the client got)
  GET  /__fake/stats   adds counts: assume_role, assume_role_with_web_identity, imds_token,
                       imds_list, imds_credentials, container, signature_failures, and last_* fields.
"""

import datetime
import os
import secrets
import sys
import time
from urllib.parse import parse_qs
from xml.sax.saxutils import escape

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fakehttp  # noqa: E402

from botocore.auth import SigV4Auth  # noqa: E402
from botocore.awsrequest import AWSRequest  # noqa: E402
from botocore.credentials import Credentials  # noqa: E402

STS_NS = "https://sts.amazonaws.com/doc/2011-06-15/"
DEFAULT_CONFIG = {
    "expiration_seconds": 3600,
    "web_token": "web-identity-token-1",
    "container_token": "container-token-1",
    "imds_role": "emrflow-test-role",
    "deny_roles": [],
    "echo_token_in_error": False,
    "now": None,
    "check_time_skew": False,
}
COUNTERS = ("assume_role", "assume_role_with_web_identity", "imds_token", "imds_list",
            "imds_credentials", "container", "signature_failures")


def iso(t):
    return datetime.datetime.fromtimestamp(int(t), datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class FakeCreds(fakehttp.FakeServer):
    """STS, IMDSv2 and container credentials."""

    name = "fake_creds"

    @classmethod
    def add_arguments(cls, parser):
        parser.add_argument("--key", action="append", default=[],
                            help="AKID:SECRET accepted for signing AssumeRole (repeatable)")
        parser.add_argument("--expiration-seconds", type=int, default=3600)

    def __init__(self, args):
        super().__init__(args)
        self.static_keys = {}
        for kv in args.key:
            akid, _, secret = kv.partition(":")
            self.static_keys[akid] = secret
        self.reset()

    # ---- state ---------------------------------------------------------------------------
    def reset(self):
        self.config = dict(DEFAULT_CONFIG)
        self.config["expiration_seconds"] = self.args.expiration_seconds
        self.keys = {k: (v, None) for k, v in self.static_keys.items()}
        self.issued = []
        self.n = 0
        self.imds_tokens = {}
        self.counts = {k: 0 for k in COUNTERS}
        self.last = {}

    def stats(self):
        out = dict(self.counts)
        for k, v in self.last.items():
            out["last_" + k] = v
        return out

    def now(self):
        return self.config["now"] if self.config["now"] is not None else time.time()

    def issue(self, via):
        self.n += 1
        akid = "ASIAFAKE%08d" % self.n
        secret = secrets.token_urlsafe(30)
        token = "FQoFAKE" + secrets.token_urlsafe(48)
        exp = self.now() + int(self.config["expiration_seconds"])
        self.keys[akid] = (secret, token)
        rec = {"access_key_id": akid, "secret_access_key": secret, "session_token": token,
               "expiration": int(exp), "via": via}
        self.issued.append(rec)
        return rec

    def control(self, req, name):
        if name == "config":
            if req.method == "POST":
                doc = req.json() or {}
                for k, v in doc.items():
                    if k not in DEFAULT_CONFIG:
                        return fakehttp.json_reply(400, {"message": "unknown config key " + k})
                    self.config[k] = v
            return fakehttp.json_reply(200, self.config)
        if name == "keys" and req.method == "POST":
            for k, v in (req.json() or {}).items():
                self.keys[k] = (v, None)
            return fakehttp.json_reply(200, {"keys": len(self.keys)})
        if name == "expire_imds_tokens" and req.method == "POST":
            self.imds_tokens.clear()
            return fakehttp.json_reply(200, {"ok": True})
        if name == "issued" and req.method == "GET":
            return fakehttp.json_reply(200, {"issued": self.issued})
        return None

    # ---- routing -------------------------------------------------------------------------
    def handle(self, req):
        if req.path == "/" and req.method == "POST":
            return self.sts(req)
        if req.path == "/latest/api/token":
            return self.imds_token(req)
        if req.path.startswith("/latest/meta-data/iam/security-credentials/"):
            return self.imds_credentials(req)
        if req.method == "GET" and (req.path.startswith("/container") or req.path == "/v1/credentials"):
            return self.container(req)
        return fakehttp.json_reply(404, {"message": "no route %s %s" % (req.method, req.path)})

    # ---- STS -----------------------------------------------------------------------------
    def sts_error(self, status, code, message):
        body = ('<ErrorResponse xmlns="%s"><Error><Type>Sender</Type><Code>%s</Code>'
                '<Message>%s</Message></Error><RequestId>req-%d</RequestId></ErrorResponse>'
                % (STS_NS, code, escape(message), self.n))
        return status, [("Content-Type", "text/xml")], body

    def sts_reply(self, action, rec, role_arn, session):
        account = (role_arn.split(":") + [""] * 5)[4] or "123456789012"
        role = role_arn.rsplit("/", 1)[-1]
        body = ('<{a}Response xmlns="{ns}">\n  <{a}Result>\n    <Credentials>\n'
                '      <AccessKeyId>{akid}</AccessKeyId>\n      <SecretAccessKey>{secret}</SecretAccessKey>\n'
                '      <SessionToken>{token}</SessionToken>\n      <Expiration>{exp}</Expiration>\n'
                '    </Credentials>\n    <AssumedRoleUser>\n'
                '      <AssumedRoleId>AROAFAKE:{session}</AssumedRoleId>\n'
                '      <Arn>arn:aws:sts::{account}:assumed-role/{role}/{session}</Arn>\n'
                '    </AssumedRoleUser>\n  </{a}Result>\n'
                '  <ResponseMetadata><RequestId>req-{n}</RequestId></ResponseMetadata>\n</{a}Response>\n'
                ).format(a=action, ns=STS_NS, akid=rec["access_key_id"], secret=escape(rec["secret_access_key"]),
                         token=escape(rec["session_token"]), exp=iso(rec["expiration"]),
                         session=escape(session), account=account, role=escape(role), n=self.n)
        return 200, [("Content-Type", "text/xml")], body

    def sts(self, req):
        form = {k: v[0] for k, v in parse_qs(req.text, keep_blank_values=True).items()}
        action = form.get("Action")
        if form.get("Version") != "2011-06-15":
            return self.sts_error(400, "InvalidAction", "missing or bad Version")
        role_arn = form.get("RoleArn")
        session = form.get("RoleSessionName")
        if not role_arn or not session:
            return self.sts_error(400, "MissingParameter", "RoleArn and RoleSessionName are required")
        self.last.update(action=action, role_arn=role_arn, session_name=session,
                         external_id=form.get("ExternalId"), duration_seconds=form.get("DurationSeconds"),
                         content_type=req.header("Content-Type"))
        if action == "AssumeRole":
            self.counts["assume_role"] += 1
            err = self.verify_sigv4(req)
            if err:
                self.counts["signature_failures"] += 1
                return err
            if role_arn in self.config["deny_roles"]:
                return self.sts_error(403, "AccessDenied", "User is not authorized to perform: "
                                      "sts:AssumeRole on resource: " + role_arn)
            return self.sts_reply("AssumeRole", self.issue("AssumeRole"), role_arn, session)
        if action == "AssumeRoleWithWebIdentity":
            self.counts["assume_role_with_web_identity"] += 1
            if req.header("Authorization"):
                return self.sts_error(400, "InvalidRequest", "AssumeRoleWithWebIdentity must not be signed")
            token = form.get("WebIdentityToken")
            self.last["web_token"] = token
            if token != self.config["web_token"]:
                msg = "Incorrect token audience"
                if self.config["echo_token_in_error"]:
                    msg += ": the token %s is not valid" % token
                return self.sts_error(400, "InvalidIdentityToken", msg)
            if role_arn in self.config["deny_roles"]:
                return self.sts_error(403, "AccessDenied", "Not authorized to perform "
                                      "sts:AssumeRoleWithWebIdentity")
            return self.sts_reply("AssumeRoleWithWebIdentity", self.issue("AssumeRoleWithWebIdentity"),
                                  role_arn, session)
        return self.sts_error(400, "InvalidAction", "unknown Action %r" % action)

    def verify_sigv4(self, req):
        auth = req.header("Authorization") or ""
        if not auth.startswith("AWS4-HMAC-SHA256 "):
            return self.sts_error(403, "MissingAuthenticationToken", "request is not signed with SigV4")
        fields = {}
        for part in auth[len("AWS4-HMAC-SHA256 "):].split(","):
            k, _, v = part.strip().partition("=")
            fields[k] = v
        try:
            akid, date, region, service, term = fields["Credential"].split("/")
            signed = fields["SignedHeaders"].split(";")
            got = fields["Signature"]
        except (KeyError, ValueError):
            return self.sts_error(403, "IncompleteSignature", "malformed Authorization header")
        amz_date = req.header("X-Amz-Date") or ""
        self.last.update(signing_region=region, signing_service=service, signed_headers=";".join(signed))
        if service != "sts" or term != "aws4_request" or not amz_date.startswith(date):
            return self.sts_error(403, "SignatureDoesNotMatch", "bad credential scope")
        if akid not in self.keys:
            return self.sts_error(403, "InvalidClientTokenId", "The security token included in the request "
                                  "is invalid (unknown access key)")
        secret, token = self.keys[akid]
        if token is not None and req.header("X-Amz-Security-Token") != token:
            return self.sts_error(403, "InvalidClientTokenId", "session token missing or wrong")
        if self.config["check_time_skew"]:
            t = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.timezone.utc)
            if abs(t.timestamp() - time.time()) > 300:
                return self.sts_error(403, "SignatureDoesNotMatch", "Signature expired")
        headers = {}
        for name, value in req.headers:
            if name.lower() in signed and name.lower() != "authorization":
                headers[name] = value
        if "host" not in signed:
            return self.sts_error(403, "SignatureDoesNotMatch", "host is not signed")
        url = "http://%s%s" % (req.header("Host"), req.target)
        areq = AWSRequest(method=req.method, url=url, headers=headers, data=req.body)
        areq.context["timestamp"] = amz_date
        signer = SigV4Auth(Credentials(akid, secret, token), "sts", region)
        canonical = signer.canonical_request(areq)
        want = signer.signature(signer.string_to_sign(areq, canonical), areq)
        if want != got:
            return self.sts_error(403, "SignatureDoesNotMatch", "The request signature we calculated does "
                                  "not match the signature you provided")
        return None

    # ---- IMDS ----------------------------------------------------------------------------
    def imds_token(self, req):
        if req.method != "PUT":
            return 405, [("Content-Type", "text/plain")], "method not allowed"
        self.counts["imds_token"] += 1
        ttl = req.header("X-aws-ec2-metadata-token-ttl-seconds")
        try:
            ttl = int(ttl)
        except (TypeError, ValueError):
            return 400, [("Content-Type", "text/plain")], "missing or bad ttl"
        if not 1 <= ttl <= 21600:
            return 400, [("Content-Type", "text/plain")], "bad ttl"
        tok = "imds-" + secrets.token_urlsafe(24)
        self.imds_tokens[tok] = time.time() + ttl
        return 200, [("Content-Type", "text/plain"), ("X-aws-ec2-metadata-token-ttl-seconds", str(ttl))], tok

    def imds_credentials(self, req):
        if req.method != "GET":
            return 405, [("Content-Type", "text/plain")], "method not allowed"
        tok = req.header("X-aws-ec2-metadata-token")
        if tok not in self.imds_tokens or self.imds_tokens[tok] < time.time():
            return 401, [("Content-Type", "text/plain")], "Unauthorized"
        role = req.path[len("/latest/meta-data/iam/security-credentials/"):]
        configured = self.config["imds_role"]
        if role == "":
            self.counts["imds_list"] += 1
            if configured is None:
                return 404, [("Content-Type", "text/html")], "<html>Not Found</html>"
            return 200, [("Content-Type", "text/plain")], configured + "\n"
        self.counts["imds_credentials"] += 1
        if role != configured:
            return 404, [("Content-Type", "text/html")], "<html>Not Found</html>"
        rec = self.issue("imds")
        return fakehttp.json_reply(200, {
            "Code": "Success", "LastUpdated": iso(self.now()), "Type": "AWS-HMAC",
            "AccessKeyId": rec["access_key_id"], "SecretAccessKey": rec["secret_access_key"],
            "Token": rec["session_token"], "Expiration": iso(rec["expiration"]),
        })

    # ---- container -----------------------------------------------------------------------
    def container(self, req):
        self.counts["container"] += 1
        want = self.config["container_token"]
        self.last["container_authorization_ok"] = want is None or req.header("Authorization") == want
        if want is not None and req.header("Authorization") != want:
            return fakehttp.json_reply(401, {"code": "AccessDeniedException",
                                             "message": "invalid or missing authorization token"})
        rec = self.issue("container")
        return fakehttp.json_reply(200, {
            "AccessKeyId": rec["access_key_id"], "SecretAccessKey": rec["secret_access_key"],
            "Token": rec["session_token"], "Expiration": iso(rec["expiration"]),
            "RoleArn": "arn:aws:iam::123456789012:role/pod-role", "AccountId": "123456789012",
        })


if __name__ == "__main__":
    fakehttp.main(FakeCreds)
