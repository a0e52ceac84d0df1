"""Which hours of a store hold an observation, as opposed to a state carried forward.

A window's history may use a state up to max_staleness old (the serving rule), but the
truth a model is trained and scored on must have been seen: a target hour counts only
when some capture lies within TARGET_CAPTURE_TOLERANCE_MINUTES of it.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np

from velibcast import constants as C
from velibcast import storage as st
from velibcast.datasets.snapshots import list_snapshots

TOLERANCE = timedelta(minutes=C.TARGET_CAPTURE_TOLERANCE_MINUTES)


def capture_times(storage: st.Storage, snapshots_root: str, start: datetime, end: datetime) -> np.ndarray:
    """Sorted POSIX seconds of the captures near [start, end]."""
    refs = list_snapshots(storage, snapshots_root, start - TOLERANCE, end + TOLERANCE)
    return np.array(sorted(r.capture_ts.timestamp() for r in refs), dtype=np.float64)


def observed_hours(hours: list[datetime], captures: np.ndarray, tolerance: timedelta = TOLERANCE) -> np.ndarray:
    """(len(hours),) bool: some capture lies within `tolerance` of the hour."""
    h = np.array([t.timestamp() for t in hours], dtype=np.float64)
    if len(captures) == 0:
        return np.zeros(len(h), dtype=bool)
    i = np.searchsorted(captures, h)
    before = np.abs(h - captures[np.maximum(i - 1, 0)])
    after = np.abs(captures[np.minimum(i, len(captures) - 1)] - h)
    return np.minimum(before, after) <= tolerance.total_seconds()
