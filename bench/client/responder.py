"""A minimal fast HTTP/1.1 responder for bench/client_bench.lua.

    /usr/bin/python3 bench/client/responder.py [--watch-pid PID]   # prints "PORT <n>"

Every request gets the same 200 DescribeJobRun reply (keep-alive), without any checking, so
the benchmark measures the clients, not the server. Control: GET /__stats ->
{"requests": n, "connections": n}; POST /__reset zeroes the counters; POST /__shutdown exits.
Exits when stdin closes or when --watch-pid's process is gone.
"""
import json
import os
import socket
import sys
import threading
import time

BODY = json.dumps({"jobRun": {
    "id": "0000000305e6q9e0ed3", "name": "nightly", "virtualClusterId": "vc0abcdefghijklmnopqrstu",
    "arn": "arn:aws:emr-containers:us-east-1:123456789012:/virtualclusters/vc0abcdefghijklmnopqrstu"
           "/jobruns/0000000305e6q9e0ed3",
    "state": "RUNNING", "clientToken": "5f1c0e8a-3c1d-4c57-9d4e-7a0f3c2b1e9d",
    "executionRoleArn": "arn:aws:iam::123456789012:role/job-role", "releaseLabel": "emr-6.15.0-latest",
    "configurationOverrides": {"applicationConfiguration": [{"classification": "spark-defaults",
                               "properties": {"spark.executor.memory": "2G"}}],
                               "monitoringConfiguration": {"persistentAppUI": "ENABLED"}},
    "jobDriver": {"sparkSubmitJobDriver": {"entryPoint": "s3://my-bucket/main.py",
                                           "entryPointArguments": ["--date", "2015-08-30"]}},
    "createdAt": "2015-08-30T12:36:00Z", "createdBy": "arn:aws:iam::123456789012:user/bench",
    "tags": {"team": "data"}}}).encode()
REPLY = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
         b"x-amzn-RequestId: 11111111-2222-3333-4444-555555555555\r\n"
         b"Content-Length: " + str(len(BODY)).encode() + b"\r\n\r\n" + BODY)

stats = {"requests": 0, "connections": 0}
lock = threading.Lock()


def reply_json(conn, obj):
    b = json.dumps(obj).encode()
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                 + str(len(b)).encode() + b"\r\n\r\n" + b)


def serve(conn):
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buf = b""
    counted = False
    try:
        while True:
            while b"\r\n\r\n" not in buf:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                buf += chunk
            head, _, rest = buf.partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:].strip())
            while len(rest) < length:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                rest += chunk
            buf = rest[length:]
            target = head.split(b" ", 2)[1]
            if target.startswith(b"/__"):
                if target == b"/__stats":
                    with lock:
                        reply_json(conn, dict(stats))
                elif target == b"/__reset":
                    with lock:
                        stats["requests"] = 0
                        stats["connections"] = 0
                    reply_json(conn, {"ok": True})
                elif target == b"/__shutdown":
                    reply_json(conn, {"ok": True})
                    os._exit(0)
                continue
            with lock:
                stats["requests"] += 1
                if not counted:
                    stats["connections"] += 1
                    counted = True
            conn.sendall(REPLY)
    except OSError:
        pass
    finally:
        conn.close()


def watch_stdin():
    try:
        while sys.stdin.buffer.read(65536):
            pass
    except (OSError, ValueError):
        pass
    os._exit(0)


def watch_pid(pid):
    while True:
        time.sleep(0.5)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            os._exit(0)
        except PermissionError:
            pass


def main():
    pid = 0
    if "--watch-pid" in sys.argv:
        pid = int(sys.argv[sys.argv.index("--watch-pid") + 1])
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(128)
    if pid:
        threading.Thread(target=watch_pid, args=(pid,), daemon=True).start()
    else:
        threading.Thread(target=watch_stdin, daemon=True).start()
    sys.stdout.write("PORT %d\n" % s.getsockname()[1])
    sys.stdout.flush()
    while True:
        conn, _ = s.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    main()
