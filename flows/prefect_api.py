"""The temporary Prefect API server of a command-line run, started before Prefect is imported.

Without PREFECT_API_URL, Prefect starts a temporary API server when the flow first needs its
client (prefect.server.api.server.SubprocessASGIServer): after the parent has imported the
whole server package (~2.3 s, only to reach that class) and while the parent waits (the server's
own imports, ~4 s). This module starts the same server - Prefect's ASGI app under uvicorn, with
the settings Prefect gives its temporary server - as the command's first step, so it boots on
the other core while the parent imports Prefect and the pipeline; the flow then runs against it
through PREFECT_API_URL, as against any Prefect server. Measured with bench/e2e.py.

The socket is bound here and handed to uvicorn (`--fd`), so the address is known at once and
no other process can take the port while the server boots. When a Prefect API is already
configured (PREFECT_API_URL from the environment, a profile or a test harness) or temporary
servers are disabled, the server started here is stopped unused and Prefect decides as usual.
"""

from __future__ import annotations

import atexit
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from velibcast import constants as C

# What Prefect sets for its own temporary server (SubprocessASGIServer._run_uvicorn_command):
# no UI, only the services a temporary server runs, the app's final configuration.
SERVER_ENV = {"PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1", "PREFECT__SERVER_FINAL": "1"}
HEALTH_POLL_S = 0.05


class TemporaryServer:
    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}/api"
        fd = self._sock.fileno()
        self.proc: subprocess.Popen | None = subprocess.Popen(
            [sys.executable, "-m", __name__, str(os.getpid()), "--factory", "prefect.server.api.server:create_app",
             "--fd", str(fd), "--log-level", "error", "--lifespan", "on"],
            pass_fds=(fd,), env={**os.environ, **SERVER_ENV})
        self._sock.close()  # the server holds its own copy of the bound socket
        # At exit, after Prefect's log and event workers have drained to it (they drain from
        # threading's exit hooks, which run before atexit's): the order Prefect's own server has.
        atexit.register(self.stop)

    def wait_healthy(self, timeout_s: float) -> None:
        """Poll /health until 200, as Prefect does for its temporary server."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout_s
        with httpx.Client() as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"the temporary Prefect API server exited with code {self.proc.returncode} "
                                       "before answering (its messages are above)")
                try:
                    if client.get(f"{self.url}/health").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                time.sleep(HEALTH_POLL_S)
        raise RuntimeError(f"the temporary Prefect API server did not answer within {timeout_s:g} s "
                           "(PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS sets the wait; PREFECT_API_URL "
                           "runs against a server of your own)")

    def stop(self) -> None:
        """Terminate, then kill after 5 s, as Prefect stops its temporary server."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def serve(argv: list[str]) -> None:
    """The server process: `<command's pid> <uvicorn arguments>`. On Linux it gets SIGTERM when the
    command's process dies, however it dies: atexit does not run for a killed command, and Prefect's
    own temporary server outlived one then. Set here, not in a preexec_fn (unsafe with threads)."""
    parent, args = int(argv[0]), argv[1:]
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:
        return  # the command died before the line above: nobody to serve
    # lazy: uvicorn and Prefect's server only in the server process
    from uvicorn.main import main as uvicorn_main

    uvicorn_main(args=args, prog_name="uvicorn")


def start() -> TemporaryServer | None:
    """Start booting a temporary server now, unless the environment names a Prefect API."""
    return None if os.environ.get("PREFECT_API_URL") else TemporaryServer()


@contextmanager
def serving(server: TemporaryServer | None) -> Iterator[None]:
    """Flows run inside against `server`, once it answers; or as Prefect decides when another
    API is configured. Call after importing Prefect: its settings say which API is configured."""
    # lazy: Prefect's settings are read after the caller imported Prefect, while the server booted
    from prefect.context import refresh_global_settings_context
    from prefect.logging import get_logger
    from prefect.settings import (
        PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
        PREFECT_UI_URL,
        get_current_settings,
        temporary_settings,
    )

    settings = get_current_settings()
    if server is None or settings.api.url or not settings.server.ephemeral.enabled:
        if server is not None:
            server.stop()
        yield
        return
    server.wait_healthy(float(os.environ.get("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS",
                                             C.PREFECT_EPHEMERAL_STARTUP_TIMEOUT_S)))
    get_logger().info("temporary Prefect API server on %s (PREFECT_API_URL runs against a server of your own)",
                      server.url)
    # In the environment, not only a settings context: Prefect's worker threads read the global settings,
    # and they drain to this server at exit. It stays set, as the server stays up, until the process ends.
    os.environ["PREFECT_API_URL"] = server.url
    refresh_global_settings_context()
    # Flow-run heartbeats let a lasting server mark a run whose process died as crashed; this server
    # dies with the process, so none can be read, and the heartbeat thread's 1 s sleeps delayed the
    # end of every run by up to a second (0.87 s measured). The server serves no UI (nor does Prefect's
    # temporary one): no "View at" link to it.
    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None, PREFECT_UI_URL: ""}):
        yield


if __name__ == "__main__":
    serve(sys.argv[1:])
