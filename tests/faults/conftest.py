"""A real HTTP proxy between the boto3 client and the moto server that injects S3 faults.

The client talks to the proxy exactly as to S3 (AWS_ENDPOINT_URL points at it); the proxy
forwards to moto, except for the requests a schedule picks, which get a fault instead:

- `slowdown`   503 SlowDown (S3's throttling answer)
- `internal`   500 InternalError
- `throttling` 400 ThrottlingException (throttling as other AWS services answer it; 503 on HEAD)
- `reset`      the connection is closed with no answer
- `lost`       the request reaches moto and is applied, then the client gets 500 instead of
               moto's answer (the response was lost: the case that makes retries non-idempotent)
- `truncate`   moto's answer is cut in the middle of its body
- `denied`     403 AccessDenied (what S3 answers a HEAD of a missing key without s3:ListBucket)

Schedules: `fail_next(n, kind)`, `every(k, kind)` (one request in k), `on_nth({...}, kind)`,
`rate(p, kind, seed)`, each optionally limited to one HTTP method.
"""

from __future__ import annotations

import http.client
import random
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse

import pytest

_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "expect", "host", "te", "upgrade"}
_ERRORS = {
    "slowdown": (503, "SlowDown", "Please reduce your request rate."),
    "internal": (500, "InternalError", "We encountered an internal error. Please try again."),
    "throttling": (400, "ThrottlingException", "Rate exceeded"),
    "lost": (500, "InternalError", "We encountered an internal error. Please try again."),
    "denied": (403, "AccessDenied", "Access Denied"),
}
KINDS = ("slowdown", "internal", "throttling", "reset", "lost", "truncate", "denied")


@dataclass
class Seen:
    n: int
    method: str
    path: str
    fault: str | None


@dataclass
class FaultProxy:
    upstream: str
    decide: Callable[[int, str, str], str | None] | None = None  # (n, method, path) -> kind | None
    seen: list[Seen] = field(default_factory=list)

    def __post_init__(self):
        self._lock = threading.Lock()
        u = urlparse(self.upstream)
        self._up = (u.hostname, u.port)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def setup(self):
                super().setup()
                # headers and body leave in two writes: without this, delayed ACKs add 40 ms each
                self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    out = b""
                    while True:
                        size = int(self.rfile.readline().split(b";")[0], 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return out
                        out += self.rfile.read(size)
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _handle(self):
                body = self._body()
                kind = proxy._next(self.command, self.path)
                if kind == "reset":
                    self.close_connection = True
                    return
                if kind in ("slowdown", "internal", "throttling", "denied"):
                    return self._error(kind)
                status, headers, payload = proxy._forward(self.command, self.path, self.headers, body)
                if kind == "lost":
                    return self._error(kind)
                self.send_response(status)
                for k, v in headers:
                    if k.lower() not in _HOP:
                        self.send_header(k, v)
                if kind == "truncate":
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self.wfile.write(payload[: len(payload) // 2])
                    self.close_connection = True
                    return
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)

            def _error(self, kind):
                status, code, message = _ERRORS[kind]
                if self.command == "HEAD" and status < 500 and status != 403:
                    # A HEAD answer has no body to carry an error code: a 400 would read as
                    # a bad request. S3 throttles with 503 anyway; only other services use 400.
                    status = 503
                xml = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
                       f"<Message>{message}</Message><RequestId>FAULT</RequestId></Error>").encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", "0" if self.command == "HEAD" else str(len(xml)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(xml)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    # ---------------------------------------------------------------- plumbing
    def _next(self, method: str, path: str) -> str | None:
        with self._lock:
            n = len(self.seen) + 1
            kind = self.decide(n, method, path) if self.decide else None
            self.seen.append(Seen(n, method, path, kind))
            return kind

    def _forward(self, method, path, headers, body):
        conn = http.client.HTTPConnection(*self._up, timeout=30)
        try:
            fwd = {k: v for k, v in headers.items() if k.lower() not in _HOP}
            fwd["Host"] = f"{self._up[0]}:{self._up[1]}"
            fwd["Content-Length"] = str(len(body))
            conn.request(method, path, body=body, headers=fwd)
            resp = conn.getresponse()
            payload = resp.read()
            return resp.status, resp.getheaders(), payload
        finally:
            conn.close()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    # ---------------------------------------------------------------- schedules
    def clear(self):
        self.decide = None

    def fail_next(self, n: int, kind: str, method: str | None = None):
        left = [n]

        def decide(_, m, __):
            if left[0] > 0 and (method is None or m == method):
                left[0] -= 1
                return kind
            return None

        self.decide = decide

    def every(self, k: int, kind: str, method: str | None = None):
        count = [0]

        def decide(_, m, __):
            if method is not None and m != method:
                return None
            count[0] += 1
            return kind if count[0] % k == 0 else None

        self.decide = decide

    def on_nth(self, ns: set[int], kind: str):
        start = len(self.seen)
        self.decide = lambda n, m, p: kind if n - start in ns else None

    def rate(self, p: float, kind: str, seed: int = 0):
        rng = random.Random(seed)
        self.decide = lambda n, m, path: kind if rng.random() < p else None

    def faults(self) -> list[Seen]:
        return [s for s in self.seen if s.fault]


@pytest.fixture
def fault_proxy(moto_endpoint):
    proxy = FaultProxy(moto_endpoint)
    yield proxy
    proxy.stop()


@pytest.fixture
def faulty_s3(fault_proxy, s3_root, monkeypatch):
    """(storage, root, proxy): a Storage whose S3 traffic crosses the proxy.

    botocore's backoff sleeps are set to zero: the retries are the same ones, without the wait.
    """
    from botocore.retries import standard

    from velibcast.storage import ClientParams, Storage

    monkeypatch.setattr(standard.ExponentialBackoff, "delay_amount", lambda self, ctx: 0.0)
    monkeypatch.setenv("AWS_ENDPOINT_URL", fault_proxy.url)
    return Storage(ClientParams(endpoint_url=fault_proxy.url, max_attempts=4)), s3_root, fault_proxy
