"""Data-quality summary of the snapshots a run read: a dict for the manifest.

Observed in capture order, as the snapshot source reads them: stations that appear after
the first snapshot or disappear before the last, capacity changes, and stations whose
duedate is older than STALE_DUEDATE_HOURS at capture (the feed stopped updating them).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np

from velibcast import constants as C


class QualityTracker:
    def __init__(self, stale_after: timedelta = timedelta(hours=C.STALE_DUEDATE_HOURS), max_listed: int = 20):
        self.stale_after = stale_after
        self.max_listed = max_listed
        self.snapshots = 0
        self.first_capture = None
        self.last_capture = None
        self.first_seen: dict[str, int] = {}
        self.last_seen: dict[str, int] = {}
        self.capacity: dict[str, int] = {}
        self.capacity_changes: dict[str, list] = {}
        self.stale: dict[str, str] = {}
        self.station_counts: list[int] = []

    def observe(self, cols) -> None:
        """One snapshot's SnapshotColumns, in capture order."""
        k = self.snapshots
        self.snapshots += 1
        ref = cols.ref
        if self.first_capture is None:
            self.first_capture = ref.capture_ts
        self.last_capture = ref.capture_ts
        self.station_counts.append(len(cols))
        ts = f"{ref.capture_ts:%Y-%m-%dT%H:%M:%SZ}"
        stale_before = int(ref.capture_ts.timestamp() - self.stale_after.total_seconds())
        first_seen, last_seen, capacity = self.first_seen, self.last_seen, self.capacity
        for code, cap in zip(cols.codes, cols.capacity.tolist()):
            if code not in first_seen:
                first_seen[code] = k
            last_seen[code] = k
            old = capacity.get(code)
            if old != cap:
                if old is not None:
                    self.capacity_changes.setdefault(code, []).append([ts, old, cap])
                capacity[code] = cap
        for i in np.flatnonzero(cols.obs < stale_before).tolist():
            code = cols.codes[i]
            if code not in self.stale:
                self.stale[code] = datetime.fromtimestamp(int(cols.obs[i]), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

    def to_dict(self) -> dict:
        last = self.snapshots - 1
        appeared = sorted(c for c, k in self.first_seen.items() if k > 0)
        disappeared = sorted(c for c, k in self.last_seen.items() if k < last)
        n = self.max_listed
        counts = sorted(self.station_counts)
        return {
            "snapshots": self.snapshots,
            "first_capture": f"{self.first_capture:%Y-%m-%dT%H:%M:%SZ}" if self.first_capture else None,
            "last_capture": f"{self.last_capture:%Y-%m-%dT%H:%M:%SZ}" if self.last_capture else None,
            "stations": len(self.first_seen),
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
