"""Synthetic snapshot stores for scale tests: N stations x D days, hourly captures.

Daily and weekly demand patterns, per-station phase and capacity, missed captures (whole
snapshots), stations missing from a snapshot, duedate lagging the capture, noise, and a few
stations that are not installed or not renting. The demo uses real data; this is for bench/.
"""

from __future__ import annotations

import gzip
from datetime import datetime, timedelta

import numpy as np

from velibcast import storage as st
from velibcast.datasets.jsonio import dumps_bytes
from velibcast.datasets.snapshots import snapshot_uri
from velibcast.timeutil import UTC, iso_second


def generate_store(
    storage: st.Storage,
    root: str,
    n_stations: int,
    days: int,
    start: datetime = datetime(2024, 1, 1, tzinfo=UTC),
    seed: int = 7,
    missed_capture_rate: float = 0.03,
    missing_station_rate: float = 0.01,
    layout: str = "partitioned",
    gzip_level: int = 1,
) -> dict:
    """Write days x 24 hourly snapshots; returns counts. Deterministic for a seed."""

    rng = np.random.default_rng(seed)
    codes = [str(100000 + i) for i in range(n_stations)]
    capacity = rng.integers(12, 60, n_stations)
    phase = rng.uniform(-3, 3, n_stations)
    level = rng.uniform(0.2, 0.8, n_stations)
    lat = 48.85 + rng.normal(0, 0.05, n_stations)
    lon = 2.35 + rng.normal(0, 0.07, n_stations)
    installed = rng.random(n_stations) > 0.005
    renting = rng.random(n_stations) > 0.005
    names = [f"Synthetic {c}" for c in codes]
    written = records = 0
    for h in range(days * 24):
        capture = start + timedelta(hours=h, minutes=int(rng.integers(5, 40)))
        if rng.random() < missed_capture_rate:
            continue
        local_h = (capture.hour + 1) % 24
        weekend = capture.weekday() >= 5
        daily = np.sin(2 * np.pi * (local_h - 8 + phase) / 24) * (0.15 if weekend else 0.3)
        share = np.clip(level + daily + rng.normal(0, 0.05, n_stations), 0, 1)
        bikes = np.minimum((share * capacity).round().astype(np.int64), capacity)
        broken = rng.integers(0, 3, n_stations)
        docks = np.maximum(capacity - bikes - broken, 0)
        ebike = (bikes * rng.uniform(0, 0.6, n_stations)).astype(np.int64)
        lag = rng.integers(60, 3000, n_stations)
        due = [datetime.fromtimestamp(int(capture.timestamp()) - int(s), UTC).isoformat() for s in lag.tolist()]
        keep = rng.random(n_stations) > missing_station_rate
        lines = []
        b, d, c, e = bikes.tolist(), docks.tolist(), capacity.tolist(), ebike.tolist()
        la, lo = lat.tolist(), lon.tolist()
        cap_s = iso_second(capture)
        for i in np.flatnonzero(keep).tolist():
            lines.append(dumps_bytes({
                "stationcode": codes[i], "name": names[i], "is_installed": "OUI" if installed[i] else "NON",
                "capacity": c[i], "numdocksavailable": d[i], "numbikesavailable": b[i],
                "mechanical": b[i] - e[i], "ebike": e[i], "is_renting": "OUI" if renting[i] else "NON",
                "is_returning": "OUI", "duedate": due[i], "coordonnees_geo": {"lat": la[i], "lon": lo[i]},
                "capture_ts_utc": cap_s,
            }))
        body = b"\n".join(lines) + b"\n"
        storage.write_bytes(snapshot_uri(root, capture, layout), gzip.compress(body, compresslevel=gzip_level, mtime=0))
        written += 1
        records += len(lines)
    return {"stations": n_stations, "days": days, "snapshots": written, "records": records}
