"""Publish one night's forecasts under a lock, then write the run's manifest.

The lock is a conditional create (If-None-Match on S3, an atomic link locally) of
`forecasts/_locks/run_date=D.json`: of two runs publishing the same date, exactly one
wins; the other fails with a message naming the holder. Names starting with `_` are
skipped by pyarrow, DuckDB and Athena, so the lock never shows up as data.
"""

from __future__ import annotations

import json
import os
import socket
from contextlib import contextmanager
from datetime import date, datetime

from velibcast import constants as C
from velibcast import storage as st
from velibcast.errors import NotFound, TerminalError
from velibcast.timeutil import UTC


class PublishConflict(TerminalError):
    """Another run holds the publish lock of this date."""


def lock_uri(root: str, run_date: date) -> str:
    return st.join(root, "forecasts", "_locks", f"run_date={run_date.isoformat()}.json")


@contextmanager
def publish_lock(storage: st.Storage, root: str, run_date: date, run_id: str):
    uri = lock_uri(root, run_date)
    now = datetime.now(UTC)
    body = json.dumps({"run_id": run_id, "host": socket.gethostname(), "pid": os.getpid(),
                       "acquired_at": now.isoformat()}).encode()
    if not storage.put_if_absent(uri, body):
        try:
            holder = json.loads(storage.read_text(uri))
        except NotFound:
            holder = None  # released between our attempt and the read: try once more
        if holder is not None:
            age = (now - datetime.fromisoformat(holder["acquired_at"])).total_seconds()
            if age < C.RUN_LOCK_TTL_S:
                raise PublishConflict(
                    f"run {holder['run_id']} (host {holder['host']}, pid {holder['pid']}) is publishing "
                    f"{run_date} since {holder['acquired_at']}; wait for it, or delete {uri} if that run is dead")
            storage.delete(uri)  # its holder died long ago
        if not storage.put_if_absent(uri, body):
            raise PublishConflict(f"another run took the publish lock {uri} first; rerun later")
    try:
        yield
    finally:
        storage.delete(uri)
