"""botocore's side of bench/client_bench.lua: N DescribeJobRun calls with botocore's client.

    /usr/bin/python3 bench/client/botocore_bench.py --port P [--calls N] [--warmup W]

Prints one JSON line: {"botocore": version, "calls": N, "cpu_s": ..., "wall_s": ...,
"cpu_us_per_call": ...}. CPU time is this process's (time.process_time), measured after the
client is created and W warm-up calls are made, as the Lua side does.
"""
import argparse
import json
import time

import botocore
import botocore.session
from botocore.config import Config


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--calls", type=int, default=10000)
    ap.add_argument("--warmup", type=int, default=100)
    a = ap.parse_args()
    session = botocore.session.get_session()
    client = session.create_client(
        "emr-containers", region_name="us-east-1", endpoint_url="http://127.0.0.1:%d" % a.port,
        aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        config=Config(retries={"mode": "standard", "max_attempts": 3}, max_pool_connections=1))
    for _ in range(a.warmup):
        client.describe_job_run(virtualClusterId="vc0abcdefghijklmnopqrstu", id="0000000305e6q9e0ed3")
    c0, w0 = time.process_time(), time.perf_counter()
    for _ in range(a.calls):
        out = client.describe_job_run(virtualClusterId="vc0abcdefghijklmnopqrstu", id="0000000305e6q9e0ed3")
        assert out["jobRun"]["state"] == "RUNNING"
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    print(json.dumps({"botocore": botocore.__version__, "calls": a.calls, "cpu_s": cpu, "wall_s": wall,
                      "cpu_us_per_call": cpu / a.calls * 1e6}))


if __name__ == "__main__":
    main()
