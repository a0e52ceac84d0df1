"""Helpers shared by the tests: a free port, waiting for a server's /ping, waiting for a condition;
reading and writing the stores' objects the way a test needs (the library only needs the streaming paths).

Waiting is always on a condition with a deadline (polled), never a bare sleep standing in for an event.
"""

from __future__ import annotations

import io
import socket
import subprocess
import time
from collections.abc import Callable, Iterable
from datetime import date
from pathlib import Path

import httpx
import pyarrow as pa
import pyarrow.parquet as pq

from velibcast import constants as C
from velibcast import storage as st
from velibcast.datasets.records import CSV, ShardWriter
from velibcast.datasets.report import SkipReport, ValidationPolicy
from velibcast.datasets.snapshots import SnapshotRef, StationRecord, fetch_bytes, parse_snapshot
from velibcast.flows.products import EVALUATION
from velibcast.flows.score import accuracy_uri
from velibcast.transform_code.velib_features import MAX_HORIZON

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


def write_transform_inputs(storage: st.Storage, batches: Iterable, out_prefix: str, fmt: str = CSV,
                           max_shard_bytes: int = C.TRANSFORM_SHARD_MAX_BYTES,
                           shard_count: int = C.TRANSFORM_SHARD_COUNT, manifest_uri: str | None = None) -> list[str]:
    """Window batches written as shards (the library's ShardWriter); their URIs."""
    w = ShardWriter(storage, out_prefix, fmt, max_shard_bytes, shard_count)
    for b in batches:
        w.add(b)
    return w.close(manifest_uri)


def read_snapshot(storage: st.Storage, ref: SnapshotRef, policy: ValidationPolicy,
                  report: SkipReport) -> list[StationRecord]:
    """One snapshot object's validated records."""
    return parse_snapshot(fetch_bytes(storage, ref.uri), ref, policy, report)


def read_accuracy(storage: st.Storage, root: str, run_date: date, product: str = EVALUATION.name) -> pa.Table:
    """The accuracy partition `velibcast score` wrote for `run_date`."""
    return pq.read_table(io.BytesIO(storage.read_bytes(accuracy_uri(root, product, run_date))))


def output_values(bikes_by_horizon: list[int], capacity: int, spread: int = 2) -> list[str]:
    """A model's output for one record (OUTPUT_COLUMNS, as text) whose point forecast at horizon h is
    bikes_by_horizon[h - 1] (the last value repeats beyond the list): P10/P90 `spread` bikes either
    side (clamped), P50 the point, p_empty / p_full 1 when the point is at 0 / at capacity, else 0.05,
    fallback 0 (the model served it)."""
    out = []
    for h in range(MAX_HORIZON):
        b = bikes_by_horizon[min(h, len(bikes_by_horizon) - 1)]
        lo, hi = max(0, b - spread), min(capacity, b + spread)
        out += [str(b), str(lo), str(b), str(hi), "1" if b == 0 else "0.05", "1" if b >= capacity else "0.05", "0"]
    return out


def output_line(record_id: str, bikes_by_horizon: list[int], capacity: int, spread: int = 2) -> str:
    """One CSV `.out` line after the OutputFilter: the record id and output_values."""
    return ",".join([record_id, *output_values(bikes_by_horizon, capacity, spread)])
