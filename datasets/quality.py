"""Data-quality summary of the snapshots a run read: a dict for the manifest.

Observed in capture order, as the snapshot source reads them: stations that appear after
the first snapshot or disappear before the last, capacity changes, and stations whose
duedate is older than STALE_DUEDATE_HOURS at capture (the feed stopped updating them).
"""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np

from velibcast import constants as C
from velibcast.timeutil import UTC, iso_second


class QualityTracker:
    """Per-station state in arrays indexed by a station number, so observing a snapshot costs no
    Python per record (it was a third of the real nightly's assembly time as a dict loop)."""

    def __init__(self, stale_after: timedelta = timedelta(hours=C.STALE_DUEDATE_HOURS), max_listed: int = 20):
        self.stale_after = stale_after
        self.max_listed = max_listed
        self.snapshots = 0
        self.first_capture = None
        self.last_capture = None
        self._codes: list[str] = []  # the run's station registry (windows.StationRegistry.codes): id -> code
        self._first_seen = np.empty(0, np.int64)   # snapshot number, -1 before
        self._last_seen = np.empty(0, np.int64)
        self._capacity = np.empty(0, np.int64)     # last capacity seen, -1 before
        self.capacity_changes: dict[str, list] = {}
        self.stale: dict[str, str] = {}
        self.station_counts: list[int] = []

    def _grow(self, n: int) -> None:
        grow = n - len(self._first_seen)
        if grow > 0:
            self._first_seen = np.concatenate([self._first_seen, np.full(grow, -1, np.int64)])
            self._last_seen = np.concatenate([self._last_seen, np.full(grow, -1, np.int64)])
            self._capacity = np.concatenate([self._capacity, np.full(grow, -1, np.int64)])

    def observe(self, cols, codes: list[str]) -> None:
        """One snapshot's SnapshotColumns, in capture order (a snapshot holds each station once);
        `codes` names its station_ids (the run's registry, which only grows)."""
        k = self.snapshots
        self.snapshots += 1
        ref = cols.ref
        if self.first_capture is None:
            self.first_capture = ref.capture_ts
        self.last_capture = ref.capture_ts
        self.station_counts.append(len(cols))
        ts = f"{iso_second(ref.capture_ts)}"
        stale_before = int(ref.capture_ts.timestamp() - self.stale_after.total_seconds())
        self._codes = codes
        ids = cols.station_ids
        self._grow(len(codes))
        cap = np.asarray(cols.capacity, dtype=np.int64)
        new = self._first_seen[ids] < 0
        self._first_seen[ids[new]] = k
        self._last_seen[ids] = k
        old = self._capacity[ids]
        for i in np.flatnonzero((old >= 0) & (old != cap)).tolist():
            self.capacity_changes.setdefault(codes[ids[i]], []).append([ts, int(old[i]), int(cap[i])])
        self._capacity[ids] = cap
        for i in np.flatnonzero(cols.obs < stale_before).tolist():
            code = codes[ids[i]]
            if code not in self.stale:
                self.stale[code] = iso_second(datetime.fromtimestamp(int(cols.obs[i]), UTC))

    @property
    def first_seen(self) -> dict[str, int]:
        return dict(zip(self._codes, self._first_seen.tolist()))

    @property
    def last_seen(self) -> dict[str, int]:
        return dict(zip(self._codes, self._last_seen.tolist()))

    def to_dict(self) -> dict:
        last = self.snapshots - 1
        codes = np.array(self._codes[:len(self._first_seen)], dtype=object)
        appeared = sorted(codes[self._first_seen > 0].tolist())
        disappeared = sorted(codes[self._last_seen < last].tolist())
        n = self.max_listed
        counts = sorted(self.station_counts)
        return {
            "snapshots": self.snapshots,
            "first_capture": f"{iso_second(self.first_capture)}" if self.first_capture else None,
            "last_capture": f"{iso_second(self.last_capture)}" if self.last_capture else None,
            "stations": len(self._codes),
            "stations_per_snapshot": {"min": counts[0], "median": counts[len(counts) // 2], "max": counts[-1]}
            if counts else None,
            "stations_appeared": {"count": len(appeared), "examples": appeared[:n]},
            "stations_disappeared": {"count": len(disappeared), "examples": disappeared[:n]},
            "capacity_changes": {"stations": len(self.capacity_changes),
                                 "examples": {c: v for c, v in sorted(self.capacity_changes.items())[:n]}},
            "stale_duedate": {"hours": self.stale_after.total_seconds() / 3600, "stations": len(self.stale),
                              "examples": dict(sorted(self.stale.items())[:n])},
        }

    def table_rows(self) -> list[dict]:
        """Rows for a Prefect table artifact (create_table_artifact(table=rows))."""
        d = self.to_dict()
        return [
            {"check": "snapshots read", "value": d["snapshots"], "examples": ""},
            {"check": "stations seen", "value": d["stations"], "examples": ""},
            {"check": "stations appearing after the first snapshot", "value": d["stations_appeared"]["count"],
             "examples": ", ".join(d["stations_appeared"]["examples"][:5])},
            {"check": "stations disappearing before the last snapshot", "value": d["stations_disappeared"]["count"],
             "examples": ", ".join(d["stations_disappeared"]["examples"][:5])},
            {"check": "stations whose capacity changed", "value": d["capacity_changes"]["stations"],
             "examples": ", ".join(list(d["capacity_changes"]["examples"])[:5])},
            {"check": f"stations with duedate > {d['stale_duedate']['hours']:g} h old", "value": d["stale_duedate"]["stations"],
             "examples": ", ".join(list(d["stale_duedate"]["examples"])[:5])},
        ]
