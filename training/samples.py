"""Supervised samples (features + the bikes at T+1h..T+3h) from an hourly state grid.

The window rule is the serving rule of issue 2 step 4 (velibcast.datasets.windows): all 24
states t-23h..t usable, station installed and renting at t. A sample also needs its three
targets usable. The grid is read by attribute (hours, station_codes, bikes, installed,
renting, capacity, lat, lon), so velibcast.datasets' StateGrid and the synthetic grid of
the tests both work; vectorised over stations, since a training span has ~100k windows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from velibcast import constants as C
from velibcast.datasets.observed import capture_times, observed_hours
from velibcast.datasets.report import SkipReport
from velibcast.datasets.windows import iter_state_grids, origins_for_range
from velibcast.errors import ConfigError
from velibcast.timeutil import PARIS, iso_minute
from velibcast.transform_code import velib_features as F


@dataclass
class Samples:
    x: np.ndarray            # (n, 31) float32, FEATURE_COLUMNS order
    y: np.ndarray            # (n, 3) float32, bikes at t+1h..t+3h
    origin: np.ndarray       # (n,) int: index into `hours`
    station: np.ndarray      # (n,) int: row of the grid (station_codes)
    hours: list[datetime]    # the grid's hours (UTC)
    codes: np.ndarray | None = None  # (n,) station codes, when samples of several grids are joined

    def __len__(self) -> int:
        return len(self.y)

    def take(self, mask: np.ndarray) -> Samples:
        return Samples(self.x[mask], self.y[mask], self.origin[mask], self.station[mask], self.hours,
                       None if self.codes is None else self.codes[mask])

    def local_days(self) -> np.ndarray:
        """(n,) the Europe/Paris date of each origin, as a proleptic ordinal."""
        by_hour = np.array([h.astimezone(PARIS).date().toordinal() for h in self.hours], dtype=np.int64)
        return by_hour[self.origin]


def station_mapping(codes) -> dict[str, int]:
    """Known stations get 1..N in sorted code order; 0 stays reserved for unknown ones."""
    return {code: i + 1 for i, code in enumerate(sorted(set(codes)))}


def calendar(hour_utc: datetime) -> tuple[int, int, int, int]:
    """TIME_FEATURES of an origin, by the one calendar rule the serving windows use (no skew)."""
    return F.time_features(hour_utc.astimezone(PARIS))


def non_working(hour_utc: datetime) -> bool:
    """Weekend or French public holiday in Europe/Paris: for metrics by day type."""
    return F.is_non_working_day(hour_utc.astimezone(PARIS).date())


def samples_from_grid(grid, mapping: dict[str, int], observed: np.ndarray | None = None,
                      report: SkipReport | None = None) -> Samples:
    """`observed` (one bool per grid hour, datasets.observed): a sample whose target hours are not all
    observed is skipped and counted as target_not_observed in `report`; None takes every hour as observed."""
    bikes = np.asarray(grid.bikes, dtype=np.float64)
    n_st, n_h = bikes.shape
    L, H = F.HISTORY_LEN, F.HORIZONS
    origins = np.arange(L - 1, n_h - H)
    if len(origins) == 0:
        return Samples(np.empty((0, len(F.FEATURE_COLUMNS)), np.float32), np.empty((0, H), np.float32),
                       np.empty(0, int), np.empty(0, int), list(grid.hours))
    usable = np.isfinite(bikes)
    # Counts of usable hours over each span, by cumulative sums: O(stations x hours).
    cum = np.concatenate([np.zeros((n_st, 1), int), np.cumsum(usable, axis=1)], axis=1)
    hist_ok = (cum[:, origins + 1] - cum[:, origins + 1 - L]) == L
    tgt_ok = (cum[:, origins + 1 + H] - cum[:, origins + 1]) == H
    active = np.asarray(grid.installed, bool)[:, origins] & np.asarray(grid.renting, bool)[:, origins]
    ok = hist_ok & tgt_ok & active
    if observed is not None:
        seen = np.all(np.asarray(observed, bool)[origins[:, None] + np.arange(1, H + 1)[None, :]], axis=1)
        dropped = int((ok & ~seen[None, :]).sum())
        if report is not None and dropped:
            report.add("target_not_observed", f"{dropped} samples",
                       f"no capture within {C.TARGET_CAPTURE_TOLERANCE_MINUTES} min of a target hour "
                       f"(first origin {iso_minute(grid.hours[int(origins[~seen][0])])})", n=dropped)
        ok &= seen[None, :]
    st_idx, o_pos = np.nonzero(ok)
    o = origins[o_pos]
    hist = bikes[st_idx[:, None], o[:, None] + np.arange(-L + 1, 1)[None, :]]
    y = bikes[st_idx[:, None], o[:, None] + np.arange(1, H + 1)[None, :]]
    cal = np.array([calendar(h) for h in grid.hours], dtype=np.float64)
    codes = list(grid.station_codes)
    index = np.array([mapping.get(c, F.UNKNOWN_STATION_INDEX) for c in codes], dtype=np.float64)
    static = np.column_stack([
        cal[o, 0], cal[o, 1], cal[o, 2],
        np.asarray(grid.capacity, np.float64)[st_idx, o],
        index[st_idx],
        np.asarray(grid.lat, np.float64)[st_idx, o],
        np.asarray(grid.lon, np.float64)[st_idx, o],
    ])
    x = np.concatenate([hist, static], axis=1).astype(np.float32)
    return Samples(x, y.astype(np.float32), o, st_idx, list(grid.hours))


def time_split(s: Samples, val_fraction: float, test_fraction: float) -> dict[str, Samples]:
    """Train / val / test by origin time, latest last. A sample whose targets reach into the
    next part's origins is dropped, so no target is seen in training that a later part forecasts."""
    uniq = np.unique(s.origin)
    n = len(uniq)
    H = F.HORIZONS
    n_test = max(1, int(round(n * test_fraction)))
    n_val = max(H + 1, int(round(n * val_fraction)))  # the last H val origins are dropped (their targets are test origins)
    if n - n_test - n_val < H + 1:
        raise ConfigError(f"{n} origin hours cannot be split into train/val/test; train on a longer span")
    val_start, test_start = uniq[n - n_test - n_val], uniq[n - n_test]
    return {
        "train": s.take(s.origin + H < val_start),
        "val": s.take((s.origin >= val_start) & (s.origin + H < test_start)),
        "test": s.take(s.origin >= test_start),
    }


def stream_samples(storage, snapshots_root: str, start: datetime, end: datetime, report=None,
                   chunk_hours: int = C.TRAIN_CHUNK_HOURS) -> tuple[Samples, dict[str, int]]:
    """Samples of every origin whose history and targets lie in the hours [start, end], chunk by chunk;
    targets must be observed (datasets.observed), the others are counted in `report`.

    The serving window path's own grids (datasets.windows.iter_state_grids, the horizons as
    lookahead): each snapshot is parsed once and one chunk's grid is alive at a time, so
    memory grows with the samples (31 float32 features + 3 targets, ~140 bytes each), not
    with the snapshots. Returns the samples, with station indices from the mapping of every
    station seen, and that mapping.
    """
    report = report if report is not None else SkipReport()
    hour = timedelta(hours=1)
    L, H = F.HISTORY_LEN, F.HORIZONS
    hours = origins_for_range(start, end + hour)
    origins = hours[L - 1 : len(hours) - H]
    parts, seen = [], set()
    captures = capture_times(storage, snapshots_root, hours[0], hours[-1])
    for _chunk, grid in iter_state_grids(storage, snapshots_root, origins, report,
                                        timedelta(hours=C.MAX_STALENESS_HOURS), chunk_hours=chunk_hours,
                                        lookahead_hours=H):
        s = samples_from_grid(grid, {}, observed_hours(grid.hours, captures), report)
        seen.update(grid.station_codes)  # a station with no full window yet is still known to the model
        offset = int((grid.hours[0] - hours[0]) / hour)
        parts.append((s.x, s.y, s.origin + offset, np.asarray(grid.station_codes, dtype=object)[s.station]
                      if len(s) else np.empty(0, dtype=object)))
    if not parts or not sum(len(p[1]) for p in parts):
        return Samples(np.empty((0, len(F.FEATURE_COLUMNS)), np.float32), np.empty((0, H), np.float32),
                       np.empty(0, int), np.empty(0, int), hours, np.empty(0, dtype=object)), station_mapping(seen)
    x, y, origin, codes = (np.concatenate(a) for a in zip(*parts))
    mapping = station_mapping(seen)
    x[:, F.COL["station_index"]] = np.array([mapping[c] for c in codes.tolist()], dtype=np.float32)
    station = np.array([mapping[c] - 1 for c in codes.tolist()], dtype=np.int64)
    return Samples(x, y, origin, station, hours, codes), mapping
