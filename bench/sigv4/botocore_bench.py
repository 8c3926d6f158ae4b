#!/usr/bin/python3
"""botocore's SigV4Auth on the emr-containers StartJobRun request of
bench/sigv4_bench.lua. Run with Debian's python3-botocore:

    /usr/bin/python3 bench/sigv4/botocore_bench.py BODY_FILE SECONDS ROUNDS

Prints "botocore <ns per signature>": the best of ROUNDS rounds of about
SECONDS of CPU time each. Every signature is a full SigV4Auth.add_auth on the
same AWSRequest (it replaces X-Amz-Date, the token and Authorization, and
hashes the body each time), the way botocore signs a request and its retries.
"""
import sys
import time

import botocore
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

URL = "https://emr-containers.us-east-1.amazonaws.com/virtualclusters/abc123/jobruns"
TOKEN = "FwoGZXIvYXdzEXAMPLE//////////wEaDEXAMPLESESSIONTOKEN+/="


def main():
    body_file, seconds, rounds = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
    with open(body_file, "rb") as f:
        body = f.read()
    creds = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", TOKEN)
    auth = SigV4Auth(creds, "emr-containers", "us-east-1")
    req = AWSRequest(method="POST", url=URL, data=body,
                     headers={"Content-Type": "application/json",
                              "User-Agent": "emrflow/0.1 lua/5.4"})
    auth.add_auth(req)
    best = float("inf")
    for _ in range(rounds):
        n = 0
        t0 = time.process_time()
        while True:
            for _ in range(100):
                auth.add_auth(req)
            n += 100
            t = time.process_time() - t0
            if t >= seconds:
                break
        best = min(best, t / n)
    print("botocore %.1f" % (best * 1e9))
    print("botocore_version %s" % botocore.__version__)


if __name__ == "__main__":
    main()
