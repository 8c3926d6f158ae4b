"""fake_echo: a small fake for the HTTP transport's specs, built on fakehttp.

    /usr/bin/python3 spec/support/fake_echo.py      # prints "PORT <n>"

Routes (any method):
  /status/<n>          reply HTTP <n> with the echo document
  /bytes/<n>           reply n bytes: byte i is i % 256 (binary safety, big bodies)
  /sleep/<ms>          wait ms milliseconds, then echo (requests run concurrently)
  /headers?N=V&N2=V2   reply with those response headers, in that order (repeats allowed)
  anything else        200 with the echo document:
                       {"method", "path", "query", "headers": [[n, v]...], "body",
                        "connection", "seq"}
Every fakehttp control endpoint and fault works as documented in fakehttp.py.
"""

import os
import sys
import time
from urllib.parse import parse_qsl

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fakehttp  # noqa: E402


class FakeEcho(fakehttp.FakeServer):
    """Echoes requests back as JSON."""

    name = "fake_echo"
    serialize = False

    def echo(self, req):
        return {"method": req.method, "path": req.path, "query": req.query,
                "headers": [[n, v] for n, v in req.headers], "body": req.text,
                "connection": req.connection, "seq": req.seq}

    def handle(self, req):
        parts = req.path.split("/")
        if len(parts) == 3 and parts[1] == "status" and parts[2].isdigit():
            return fakehttp.json_reply(int(parts[2]), self.echo(req))
        if len(parts) == 3 and parts[1] == "bytes" and parts[2].isdigit():
            n = int(parts[2])
            body = (bytes(range(256)) * (n // 256 + 1))[:n]
            return 200, [("Content-Type", "application/octet-stream")], body
        if len(parts) == 3 and parts[1] == "sleep" and parts[2].isdigit():
            time.sleep(int(parts[2]) / 1000.0)
            return fakehttp.json_reply(200, self.echo(req))
        if req.path == "/headers":
            return 200, parse_qsl(req.query, keep_blank_values=True), b"headers"
        return fakehttp.json_reply(200, self.echo(req))


if __name__ == "__main__":
    fakehttp.main(FakeEcho)
