"""fakehttp: a loopback HTTP/1.1 fake-server framework for emrflow's specs.

Standard library only. Run by /usr/bin/python3. A fake is a subclass of FakeServer started
through main():

    import fakehttp

    class FakeThing(fakehttp.FakeServer):
        name = "fake_thing"             # used in log lines (stderr only)
        serialize = True                # handle() calls run one at a time under self.lock

        @classmethod
        def add_arguments(cls, parser):  # optional: extra command-line options (argparse)
            parser.add_argument("--region", default="us-east-1")

        def __init__(self, args):       # args: the parsed argparse namespace
            super().__init__(args)
            self.things = {}

        def handle(self, req):          # every request not under /__fake/
            if req.method == "GET" and req.path == "/things":
                return fakehttp.json_reply(200, {"things": sorted(self.things)})
            return fakehttp.json_reply(404, {"message": "no route " + req.path})

        def reset(self):                # optional: POST /__fake/reset also calls this
            self.things.clear()

        def stats(self):                # optional: extra fields merged into GET /__fake/stats
            return {"things": len(self.things)}

        def control(self, req, name):   # optional: POST/GET /__fake/<name> not built in
            return None                 # None -> 404

        def fault_reply(self, fault, req):   # optional: the reply of a "status" fault
            return super().fault_reply(fault, req)

    if __name__ == "__main__":
        fakehttp.main(FakeThing)

handle(req) returns (status, headers, body):
  status   int
  headers  list of (name, value) pairs (or a dict); Content-Length is added when absent
  body     bytes, str (UTF-8) or any JSON-encodable dict/list (sent as JSON)
json_reply(status, obj, headers=None) builds such a tuple with Content-Type application/json.
An exception in handle() becomes a 500 reply with the traceback's last line (and is logged).

req (a Request) has:
  method, target (raw request target), path (before "?", not decoded), query (raw text after
  "?", "" when none), params (dict name -> list of values, parse_qs of query), headers (ordered
  list of [name, value] as received), header(name, default=None) (case-insensitive, first
  match), body (bytes), text (body decoded as UTF-8, errors replaced), json() (body decoded as
  JSON, None when empty; raises ValueError when invalid), connection (id of the TCP connection,
  1, 2, ...), seq (1, 2, ... over all recorded requests).

Command line (main): --host (default 127.0.0.1), --port (default 0 = any free port),
--watch-pid PID (also exit when that process is gone), --verbose (log each request and
handler error to stderr), --tls-cert CERT.pem --tls-key KEY.pem (serve HTTPS instead of HTTP),
--connect-to PORT (also be an HTTPS proxy: a CONNECT request, recorded like any other, is
tunnelled to 127.0.0.1:PORT whatever host it names), plus the subclass's add_arguments. Once listening, prints exactly one line "PORT <n>" on stdout
and flushes; nothing else is ever written to stdout. Exits when stdin reaches EOF (a watchdog
thread reads it), on POST /__fake/shutdown, or when --watch-pid's process disappears. At start
it closes every inherited file descriptor above 2, so a fake never holds another fake's pipes.

Keep-alive: HTTP/1.1 persistent connections (closed when the client sends "Connection: close"
or speaks HTTP/1.0 without keep-alive). Request bodies by Content-Length or chunked encoding.

Control endpoints (JSON in and out, never recorded, never matched by faults):
  GET  /__fake/requests[?method=M&path_prefix=/p&since=SEQ]
         -> {"requests": [{"seq", "connection", "method", "path", "query", "headers": [[n, v]...],
             "body" (text), "body_base64" (only when the body is not UTF-8), "fault" (kind or
             absent), "time"}...]}
  POST /__fake/faults {"faults": [fault, ...]}   -> {"queued": <faults now queued>}
  GET  /__fake/faults                            -> {"faults": [<remaining faults>]}
  POST /__fake/reset                             -> {"ok": true}  clears requests, faults and
         counters, then calls self.reset()
  GET  /__fake/stats -> {"requests": n, "connections": n, "connections_total": n,
         "control_requests": n, "faults_fired": n, ...self.stats()}
         "connections" counts TCP connections that carried at least one non-control request
         (so a test's own control traffic does not disturb keep-alive checks);
         "connections_total" counts every accepted connection.
  POST /__fake/shutdown                          -> {"ok": true}, then the process exits
  any other /__fake/<name>                       -> self.control(req, name) or 404

Faults: a queue, consulted in order for each non-control request; the first fault whose
"match" fits fires and its "count" (default 1) goes down by one; at 0 it leaves the queue.
A fired fault is recorded in the request's "fault" field. Fault fields:
  match   optional {"method": "POST", "path": exact, "path_prefix": "/virtualclusters",
          "query_contains": "x=1", "header": {"name": "value"}, "body_contains": "text"}
  kind    "status"     reply status/body/headers without calling handle() (default body:
                       self.fault_reply(); "body" may be a JSON value or a string)
          "reset"      read the request, then reset the TCP connection (RST, no FIN). The
                       fake first sends a status line and half a header line ("HTTP/1.1 200
                       OK\r\nX-Fake-Reset: "), so libcurl cannot take the connection for a stale
                       keep-alive one and silently retry on a new one: the client always sees
                       the reset (libcurl: "Recv failure: Connection reset by peer").
                       "silent": true sends nothing first (then libcurl retries once by itself
                       when the connection was reused); "prefix": "..." sends those bytes.
          "slow"       wait "seconds" (default 5), then handle() and reply normally
          "truncate"   handle(), send the headers with the full Content-Length but only half of
                       the body (at least one byte short), then close the connection (FIN)
          "lose_reply" handle() (state changes: e.g. a job is created), then reset the
                       connection as "reset" does instead of replying
          "close"      handle(), reply with "Connection: close" and close afterwards
  status, headers, body   for "status" (headers: dict or list of pairs)
  count   how many matching requests it affects (default 1)
"""

import argparse
import base64
import json
import os
import socket
import socketserver
import struct
import sys
import threading
import time
import traceback
from urllib.parse import parse_qs

MAX_LINE = 65536
MAX_HEADERS = 200
MAX_BODY = 64 * 1024 * 1024
RESET_PREFIX = b"HTTP/1.1 200 OK\r\nX-Fake-Reset: "

REASONS = {
    100: "Continue", 200: "OK", 201: "Created", 202: "Accepted", 204: "No Content",
    301: "Moved Permanently", 302: "Found", 304: "Not Modified", 400: "Bad Request",
    401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
    409: "Conflict", 413: "Payload Too Large", 429: "Too Many Requests",
    500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable",
    504: "Gateway Timeout",
}


class BadRequest(Exception):
    """The client sent something that is not HTTP/1.1 we understand."""


class Request:
    """One parsed request (see the module docstring for the fields)."""

    def __init__(self, method, target, version, headers, body, connection):
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers
        self.body = body
        self.connection = connection
        self.seq = 0
        path, sep, query = target.partition("?")
        self.path = path
        self.query = query if sep else ""
        self.params = parse_qs(self.query, keep_blank_values=True)

    def header(self, name, default=None):
        low = name.lower()
        for n, v in self.headers:
            if n.lower() == low:
                return v
        return default

    @property
    def text(self):
        return self.body.decode("utf-8", errors="replace")

    def json(self):
        if not self.body:
            return None
        return json.loads(self.body.decode("utf-8"))

    def record(self):
        rec = {
            "seq": self.seq, "connection": self.connection, "method": self.method,
            "path": self.path, "query": self.query,
            "headers": [[n, v] for n, v in self.headers], "time": time.time(),
        }
        try:
            rec["body"] = self.body.decode("utf-8")
        except UnicodeDecodeError:
            rec["body"] = self.body.decode("utf-8", errors="replace")
            rec["body_base64"] = base64.b64encode(self.body).decode("ascii")
        return rec


def _body_bytes(body):
    if body is None:
        return b""
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode("utf-8")
    return json.dumps(body, separators=(",", ":")).encode("utf-8")


def _header_list(headers):
    if headers is None:
        return []
    if isinstance(headers, dict):
        return [(str(k), str(v)) for k, v in headers.items()]
    return [(str(k), str(v)) for k, v in headers]


def json_reply(status, obj, headers=None):
    """A handle() result carrying obj as JSON."""
    hs = [("Content-Type", "application/json")] + _header_list(headers)
    return status, hs, _body_bytes(obj)


def _fault_matches(fault, req):
    m = fault.get("match") or {}
    if "method" in m and m["method"].upper() != req.method.upper():
        return False
    if "path" in m and m["path"] != req.path:
        return False
    if "path_prefix" in m and not req.path.startswith(m["path_prefix"]):
        return False
    if "query_contains" in m and m["query_contains"] not in req.query:
        return False
    if "body_contains" in m and m["body_contains"] not in req.text:
        return False
    for name, value in (m.get("header") or {}).items():
        if req.header(name) != value:
            return False
    return True


class FakeServer:
    """Base class of every fake. Subclass it and override handle() (and optionally reset(),
    stats(), control(), fault_reply(), add_arguments())."""

    name = "fakehttp"
    serialize = True

    def __init__(self, args):
        self.args = args
        self.lock = threading.RLock()
        self._state = threading.Lock()      # guards the framework's own bookkeeping
        self._requests = []
        self._faults = []
        self._seq = 0
        self._conn_seq = 0
        self._data_conns = set()
        self._connections_total = 0
        self._control_requests = 0
        self._faults_fired = 0
        self._server = None

    # ---- to override -------------------------------------------------------------------
    @classmethod
    def add_arguments(cls, parser):
        pass

    def handle(self, req):
        return json_reply(404, {"message": "no route for %s %s" % (req.method, req.path)})

    def reset(self):
        pass

    def stats(self):
        return {}

    def control(self, req, name):
        return None

    def fault_reply(self, fault, req):
        status = int(fault.get("status", 500))
        body = fault.get("body")
        if body is None:
            body = {"message": "injected fault: HTTP %d" % status}
        headers = _header_list(fault.get("headers"))
        if not any(n.lower() == "content-type" for n, _ in headers) and not isinstance(body, (str, bytes)):
            headers.insert(0, ("Content-Type", "application/json"))
        return status, headers, _body_bytes(body)

    # ---- framework internals -----------------------------------------------------------
    def log(self, fmt, *a):
        if getattr(self.args, "verbose", False):
            sys.stderr.write("[%s] %s\n" % (self.name, fmt % a))
            sys.stderr.flush()

    def _new_connection(self):
        with self._state:
            self._conn_seq += 1
            self._connections_total += 1
            return self._conn_seq

    def _take_fault(self, req):
        with self._state:
            for i, fault in enumerate(self._faults):
                if _fault_matches(fault, req):
                    left = int(fault.get("count", 1)) - 1
                    if left <= 0:
                        del self._faults[i]
                    else:
                        fault["count"] = left
                    self._faults_fired += 1
                    return dict(fault)
        return None

    def _record(self, req, fault):
        with self._state:
            self._seq += 1
            req.seq = self._seq
            self._data_conns.add(req.connection)
            rec = req.record()
            if fault:
                rec["fault"] = fault.get("kind")
            self._requests.append(rec)

    def _call_handle(self, req):
        try:
            if self.serialize:
                with self.lock:
                    result = self.handle(req)
            else:
                result = self.handle(req)
            status, headers, body = result
            return int(status), _header_list(headers), _body_bytes(body)
        except Exception as e:  # a bug in a fake must show up as a clear 500, not a hang
            traceback.print_exc(file=sys.stderr)
            return json_reply(500, {"message": "fake %s raised: %s: %s" % (self.name, type(e).__name__, e)})

    def _control(self, req):
        with self._state:
            self._control_requests += 1
        name = req.path[len("/__fake/"):]
        if name == "requests" and req.method == "GET":
            with self._state:
                reqs = list(self._requests)
            method = req.params.get("method", [None])[0]
            prefix = req.params.get("path_prefix", [None])[0]
            since = int(req.params.get("since", ["0"])[0] or 0)
            out = [r for r in reqs if (method is None or r["method"] == method)
                   and (prefix is None or r["path"].startswith(prefix)) and r["seq"] > since]
            return json_reply(200, {"requests": out})
        if name == "faults" and req.method == "POST":
            try:
                doc = req.json() or {}
                faults = doc.get("faults")
                if not isinstance(faults, list):
                    raise ValueError('expected {"faults": [...]}')
                for f in faults:
                    if not isinstance(f, dict) or f.get("kind") not in (
                            "status", "reset", "slow", "truncate", "lose_reply", "close"):
                        raise ValueError("bad fault %r" % (f,))
            except ValueError as e:
                return json_reply(400, {"message": str(e)})
            with self._state:
                self._faults.extend(dict(f) for f in faults)
                n = len(self._faults)
            return json_reply(200, {"queued": n})
        if name == "faults" and req.method == "GET":
            with self._state:
                return json_reply(200, {"faults": list(self._faults)})
        if name == "reset" and req.method == "POST":
            with self._state:
                self._requests = []
                self._faults = []
                self._data_conns = set()
                self._connections_total = 0
                self._control_requests = 0
                self._faults_fired = 0
            with self.lock:
                self.reset()
            return json_reply(200, {"ok": True})
        if name == "stats" and req.method == "GET":
            with self._state:
                st = {"requests": len(self._requests), "connections": len(self._data_conns),
                      "connections_total": self._connections_total,
                      "control_requests": self._control_requests,
                      "faults_fired": self._faults_fired}
            with self.lock:
                st.update(self.stats())
            return json_reply(200, st)
        if name == "shutdown" and req.method == "POST":
            threading.Thread(target=self.shutdown, daemon=True).start()
            return json_reply(200, {"ok": True})
        with self.lock:
            res = self.control(req, name)
        if res is None:
            return json_reply(404, {"message": "no control endpoint %s %s" % (req.method, req.path)})
        return res

    def shutdown(self):
        if self._server is not None:
            self._server.shutdown()


def _read_line(rfile):
    line = rfile.readline(MAX_LINE + 1)
    if len(line) > MAX_LINE:
        raise BadRequest("line too long")
    return line


def _read_request(rfile, conn_id, wfile=None):
    line = _read_line(rfile)
    while line in (b"\r\n", b"\n"):        # tolerate stray CRLF between requests
        line = _read_line(rfile)
    if not line:
        return None
    try:
        method, target, version = line.decode("latin-1").rstrip("\r\n").split(" ")
    except ValueError:
        raise BadRequest("bad request line")
    headers = []
    while True:
        h = _read_line(rfile)
        if not h:
            raise BadRequest("connection closed inside the headers")
        if h in (b"\r\n", b"\n"):
            break
        if len(headers) >= MAX_HEADERS:
            raise BadRequest("too many headers")
        name, sep, value = h.decode("latin-1").rstrip("\r\n").partition(":")
        if not sep or not name or name != name.strip():
            raise BadRequest("bad header line")
        headers.append((name, value.strip(" \t")))
    req = Request(method, target, version, headers, b"", conn_id)
    if wfile is not None and (req.header("Expect") or "").lower() == "100-continue":
        wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        wfile.flush()
    te = (req.header("Transfer-Encoding") or "").lower()
    if "chunked" in te:
        chunks = []
        total = 0
        while True:
            size_line = _read_line(rfile).split(b";")[0].strip()
            try:
                size = int(size_line, 16)
            except ValueError:
                raise BadRequest("bad chunk size")
            if size == 0:
                while _read_line(rfile) not in (b"\r\n", b"\n", b""):
                    pass
                break
            total += size
            if total > MAX_BODY:
                raise BadRequest("body too large")
            chunks.append(rfile.read(size))
            _read_line(rfile)
        req.body = b"".join(chunks)
    else:
        cl = req.header("Content-Length")
        if cl is not None:
            try:
                n = int(cl)
            except ValueError:
                raise BadRequest("bad Content-Length")
            if n < 0 or n > MAX_BODY:
                raise BadRequest("bad Content-Length")
            body = rfile.read(n)
            if len(body) != n:
                raise BadRequest("connection closed inside the body")
            req.body = body
    return req


def _wants_close(req):
    conn = (req.header("Connection") or "").lower()
    if req.version == "HTTP/1.0":
        return "keep-alive" not in conn
    return "close" in conn


class _Handler(socketserver.StreamRequestHandler):
    def setup(self):
        ctx = self.server.tls_context
        if ctx is not None:
            self.request.settimeout(10)
            self.request = ctx.wrap_socket(self.request, server_side=True)
            self.request.settimeout(None)
        super().setup()

    def handle(self):
        fake = self.server.fake
        conn_id = fake._new_connection()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while True:
            try:
                req = _read_request(self.rfile, conn_id, self.wfile)
            except BadRequest as e:
                self._send(400, [("Content-Type", "application/json")],
                           _body_bytes({"message": "bad request: %s" % e}), close=True)
                return
            except (ConnectionError, OSError):
                return
            if req is None:
                return
            if not self._serve(fake, req):
                return

    def _send(self, status, headers, body, close=False, truncate=False):
        hs = list(headers)
        if not any(n.lower() == "content-length" for n, _ in hs):
            hs.append(("Content-Length", str(len(body))))
        if close:
            hs.append(("Connection", "close"))
        head = "HTTP/1.1 %d %s\r\n" % (status, REASONS.get(status, "Status"))
        head += "".join("%s: %s\r\n" % (n, v) for n, v in hs) + "\r\n"
        data = head.encode("latin-1")
        if truncate:
            data += body[: max(0, len(body) // 2 if len(body) > 1 else 0)]
        else:
            data += body
        try:
            self.wfile.write(data)
            self.wfile.flush()
        except (ConnectionError, OSError):
            return False
        return True

    def _reset(self, fault):
        try:
            prefix = RESET_PREFIX if not fault.get("silent") else b""
            if "prefix" in fault:
                prefix = str(fault["prefix"]).encode("latin-1")
            if prefix:
                self.wfile.write(prefix)
                self.wfile.flush()
                time.sleep(0.05)
            # SO_LINGER 0 then close(): the kernel sends RST. (socketserver would shut the
            # socket down with a FIN first, which a client reads as a clean end of stream.)
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass

    def _tunnel(self, fake, req):
        """CONNECT (the fake as an HTTPS proxy): tunnel to 127.0.0.1:--connect-to, whatever
        host was asked for, so nothing ever leaves the machine."""
        port = getattr(fake.args, "connect_to", 0)
        if not port:
            self._send(405, [("Content-Type", "application/json")],
                       _body_bytes({"message": "CONNECT needs --connect-to"}), close=True)
            return False
        try:
            up = socket.create_connection(("127.0.0.1", port), timeout=10)
        except OSError as e:
            self._send(502, [], _body_bytes("cannot connect: %s" % e), close=True)
            return False
        up.settimeout(None)
        self.wfile.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        self.wfile.flush()
        client = self.connection

        def pump(src, dst):
            try:
                while True:
                    data = src.recv(65536)
                    if not data:
                        break
                    dst.sendall(data)
            except OSError:
                pass
            for sock in (dst, src):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

        t = threading.Thread(target=pump, args=(up, client), daemon=True)
        t.start()
        pump(client, up)
        t.join(5)
        up.close()
        return False

    def _serve(self, fake, req):
        """Serves one request; returns False when the connection must end."""
        if req.path.startswith("/__fake/"):
            status, headers, body = fake._control(req)
            close = _wants_close(req)
            return self._send(status, headers, body, close=close) and not close
        if req.method == "CONNECT":
            fake._record(req, None)
            return self._tunnel(fake, req)
        fault = fake._take_fault(req)
        fake._record(req, fault)
        kind = fault.get("kind") if fault else None
        fake.log("%s %s%s", req.method, req.target, " (fault %s)" % kind if kind else "")
        if kind == "status":
            status, headers, body = fake.fault_reply(fault, req)
            close = _wants_close(req)
            return self._send(status, headers, body, close=close) and not close
        if kind == "reset":
            self._reset(fault)
            return False
        if kind == "slow":
            time.sleep(float(fault.get("seconds", 5)))
        status, headers, body = fake._call_handle(req)
        if kind == "lose_reply":
            self._reset(fault)
            return False
        if kind == "truncate":
            if len(body) == 0:
                headers = [(n, v) for n, v in headers if n.lower() != "content-length"]
                headers.append(("Content-Length", "16"))
            self._send(status, headers, body, truncate=True)
            time.sleep(0.05)
            return False
        close = kind == "close" or _wants_close(req)
        return self._send(status, headers, body, close=close) and not close


class _TCPServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 128
    tls_context = None

    def handle_error(self, request, client_address):
        # A client going away or failing the TLS handshake is part of the tests.
        if getattr(self.fake.args, "verbose", False):
            traceback.print_exc(file=sys.stderr)


def _close_inherited_fds():
    try:
        fds = [int(f) for f in os.listdir("/proc/self/fd")]
    except OSError:
        fds = list(range(3, 1024))
    for fd in fds:
        if fd > 2:
            try:
                os.close(fd)
            except OSError:
                pass


def _watch_stdin(server):
    try:
        while sys.stdin.buffer.read(65536):
            pass
    except (OSError, ValueError):
        pass
    server.shutdown()


def _watch_pid(server, pid):
    while True:
        time.sleep(0.5)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            server.shutdown()
            return
        except PermissionError:
            pass


def main(cls, argv=None):
    """Parses the command line, starts cls(args) on 127.0.0.1, prints "PORT <n>", serves until
    stdin closes (or --watch-pid's process ends, or POST /__fake/shutdown)."""
    _close_inherited_fds()
    parser = argparse.ArgumentParser(prog=cls.name, description=(cls.__doc__ or "").strip())
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--watch-pid", type=int, default=0)
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--tls-cert", default=None, help="PEM certificate: serve HTTPS")
    parser.add_argument("--tls-key", default=None, help="PEM private key of --tls-cert")
    parser.add_argument("--connect-to", type=int, default=0,
                        help="act as an HTTPS proxy: tunnel CONNECT to 127.0.0.1:PORT")
    cls.add_arguments(parser)
    args = parser.parse_args(argv)
    fake = cls(args)
    server = _TCPServer((args.host, args.port), _Handler)
    server.fake = fake
    if args.tls_cert:
        import ssl
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
        server.tls_context = ctx
    fake._server = server
    threading.Thread(target=_watch_stdin, args=(fake,), daemon=True).start()
    if args.watch_pid:
        threading.Thread(target=_watch_pid, args=(fake, args.watch_pid), daemon=True).start()
    sys.stdout.write("PORT %d\n" % server.server_address[1])
    sys.stdout.flush()
    try:
        server.serve_forever(poll_interval=0.05)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main(FakeServer)
