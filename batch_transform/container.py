"""One "instance" of the local runtime: a model server process and its HTTP client.

This is the wire side of the runtime: start the server with the container environment,
wait for /ping, read /execution-parameters, send /invocations with the job's timeout and
retries. What goes in the requests is dataplane.py's business.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

import httpx

from velibcast import constants as C
from velibcast.batch_transform.errors import ContainerError, InvocationFailed
from velibcast.batch_transform.lifeline import Lifeline
from velibcast.retry import Backoff


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class ClientConfig:
    timeout_s: float
    max_retries: int
    retry_client_errors: bool = False
    chunked: bool = False   # MaxPayloadInMB=0: bodies go with chunked transfer encoding (BOTO)


class Container:
    def __init__(self, model_dir: str, env: dict[str, str], concurrency: int, lifeline: Lifeline):
        """The server's log goes to `lifeline`'s folder, and the server ends when this process does."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = tempfile.NamedTemporaryFile(prefix="server-", suffix=".log", dir=lifeline.folder, delete=False)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "velibcast.batch_transform.server", "--model-dir", model_dir,
             "--port", str(self.port), "--host", "127.0.0.1", "--lifeline-fd", str(lifeline.fd)],
            env={**os.environ, **env}, stdout=self._log, stderr=subprocess.STDOUT, pass_fds=(lifeline.fd,),
        )
        self.client = httpx.Client(base_url=self.url, limits=httpx.Limits(max_connections=max(1, concurrency)))

    def log_tail(self, n: int = 20) -> str:
        try:
            with open(self._log.name, "rb") as f:
                return b"\n".join(f.read().splitlines()[-n:]).decode("utf-8", "replace")
        except OSError:
            return ""

    def wait_ready(self, timeout_s: float = C.CONTAINER_START_TIMEOUT_S, clock=time.monotonic,
                   sleep=time.sleep) -> None:
        """Ping until 200, as the service does for up to 30 minutes (BTS §4.2): a model that
        loads for minutes still runs."""
        deadline = clock() + timeout_s
        while clock() < deadline:
            if self.proc.poll() is not None:
                tail = self.log_tail()
                last = tail.splitlines()[-1] if tail else ""
                raise ContainerError(
                    f"AlgorithmError: model server exited with code {self.proc.returncode} before answering "
                    f"/ping: {last}", detail=tail)
            try:
                if self.client.get("/ping", timeout=C.PING_TIMEOUT_S).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            sleep(C.SERVER_START_POLL_S)
        raise ContainerError("AlgorithmError: Model container failed to respond to ping. Please ensure /ping "
                             "endpoint is implemented and responds with an HTTP 200 status code")

    def execution_parameters(self) -> dict:
        """The container's preferences, {} when it has none (404 or not JSON) (BTS §4.3)."""
        try:
            r = self.client.get("/execution-parameters", timeout=C.PING_TIMEOUT_S)
            if r.status_code == 200:
                d = r.json()
                return d if isinstance(d, dict) else {}
        except (httpx.TransportError, ValueError):
            pass
        return {}

    def invoke(self, payload: bytes, content_type: str | None, accept: str | None, cfg: ClientConfig) -> bytes:
        headers = {}
        if content_type:
            headers["Content-Type"] = content_type
        if accept:
            headers["Accept"] = accept
        pauses = Backoff(C.INVOKE_RETRY_BACKOFF_S, cfg.max_retries + 1).pauses()
        while True:
            try:
                body = iter((payload,)) if cfg.chunked else payload
                r = self.client.post("/invocations", content=body, headers=headers, timeout=cfg.timeout_s)
            except httpx.TimeoutException:
                failure = InvocationFailed(None, "Unable to get response from algorithm (timed out after "
                                                 f"{cfg.timeout_s:g} s)")
            except httpx.TransportError as e:
                failure = InvocationFailed(None, f"Unable to get response from algorithm ({type(e).__name__})")
            else:
                if r.status_code < 300:
                    return r.content
                failure = InvocationFailed(r.status_code, r.text)
                if r.status_code < 500 and not cfg.retry_client_errors:
                    raise failure
            pause = next(pauses, None)
            if pause is None:
                raise failure
            time.sleep(pause)

    def close(self) -> None:
        self.client.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=C.SERVER_GRACEFUL_SHUTDOWN_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        try:
            os.unlink(self._log.name)
        except OSError:
            pass
