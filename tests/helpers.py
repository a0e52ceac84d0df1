"""Helpers shared by the tests: a free port, waiting for a server's /ping, waiting for a condition.

Waiting is always on a condition with a deadline (polled), never a bare sleep standing in for an event.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx

POLL_S = 0.02
REPO = Path(__file__).resolve().parents[1]  # the repository root: bundled data lives in it


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(condition: Callable[[], bool], what: str, timeout_s: float = 30.0) -> None:
    """Poll `condition` until it holds; AssertionError naming `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not so after {timeout_s} s")
        time.sleep(POLL_S)


def wait_for_ping(url: str, proc: subprocess.Popen | None = None, timeout_s: float = 60.0) -> None:
    """Until `url`/ping answers 200; fails at once (with its stderr) if `proc` exits first."""

    def up() -> bool:
        if proc is not None and proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace")[-2000:] if proc.stderr else ""
            raise AssertionError(f"the server exited with {proc.returncode} before answering /ping: {err}")
        try:
            return httpx.get(f"{url}/ping", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    wait_until(up, f"{url}/ping answers 200", timeout_s)
