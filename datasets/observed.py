"""Which targets of a store hold an observation, as opposed to a state carried forward.

A window's history may use a state up to max_staleness old (the serving rule), but the
truth a model is trained and scored on must have been seen. Two rules, both needed:
- `observed_hours`: a target hour counts only when some capture lies within
  TARGET_CAPTURE_TOLERANCE_MINUTES of it (the network was being captured then);
- `news_since_origin`: a station's target counts only when its state at the target hour is a
  record observed after its state at the origin. Where it is the origin's own record, the feed
  said nothing of the station between the two hours, and persistence equals that "truth" by
  construction. The scraper's gaps cause it, not quiet stations: in the bundled 2022 fortnight
  such targets cluster at the origin hours the scraper skipped, and the stations behind them
  change afterwards as often as the others (the figures are in training/README.md).
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


def news_since_origin(grid, rows: np.ndarray, origin_cols: np.ndarray, target_cols: np.ndarray) -> np.ndarray:
    """bool per cell: the state of station `rows` at grid hour `target_cols` is a record observed
    after its state at `origin_cols` (arrays broadcast together). The grid is read by attribute
    (hours, and age_s: seconds from each state's observation to its hour); a grid without
    observation times (age_s None) holds states observed on their hour, all news for a later target."""
    hours_s = np.array([h.timestamp() for h in grid.hours], dtype=np.int64)
    age_s = getattr(grid, "age_s", None)
    age = np.zeros(np.shape(grid.bikes), np.int64) if age_s is None else np.asarray(age_s, np.int64)
    return hours_s[target_cols] - age[rows, target_cols] > hours_s[origin_cols] - age[rows, origin_cols]
