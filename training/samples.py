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
from velibcast.errors import ConfigError
from velibcast.datasets.windows import static_time_features
from velibcast.transform_code import velib_features as F
from velibcast.timeutil import PARIS


@dataclass
class Samples:
    x: np.ndarray            # (n, 31) float32, FEATURE_COLUMNS order
    y: np.ndarray            # (n, 3) float32, bikes at t+1h..t+3h
    origin: np.ndarray       # (n,) int: index into `hours`
    station: np.ndarray      # (n,) int: row of the grid (station_codes)
    hours: list[datetime]    # the grid's hours (UTC)

    def __len__(self) -> int:
        return len(self.y)

    def take(self, mask: np.ndarray) -> "Samples":
        return Samples(self.x[mask], self.y[mask], self.origin[mask], self.station[mask], self.hours)


def station_mapping(codes) -> dict[str, int]:
    """Known stations get 1..N in sorted code order; 0 stays reserved for unknown ones."""
    return {code: i + 1 for i, code in enumerate(sorted(set(codes)))}


def calendar(hour_utc: datetime) -> tuple[int, int, int]:
    """hour, day_of_week, is_weekend exactly as the serving windows compute them (one source, no skew)."""
    return static_time_features(hour_utc)


def non_working(hour_utc: datetime) -> bool:
    """Weekend or French public holiday in Europe/Paris: for metrics by day type."""
    return F.is_non_working_day(hour_utc.astimezone(PARIS).date())


def grid_for_samples(storage, snapshots_root: str, first_origin: datetime, last_origin: datetime,
                     report, policy=None):
    """The state grid samples are cut from: the serving window path's own (iter_state_grids), with
    the horizons as lookahead and one chunk for the whole span (a training split needs every origin)."""
    from velibcast.datasets.windows import iter_state_grids, origins_for_range

    origins = origins_for_range(first_origin, last_origin + timedelta(hours=1))
    if not origins:
        raise ConfigError(f"no origin hour in {first_origin:%Y-%m-%dT%H:%MZ}..{last_origin:%Y-%m-%dT%H:%MZ}")
    [(_, grid)] = iter_state_grids(storage, snapshots_root, origins, report, timedelta(hours=C.MAX_STALENESS_HOURS),
                                   policy, chunk_hours=len(origins), lookahead_hours=F.HORIZONS)
    return grid


def samples_from_grid(grid, mapping: dict[str, int]) -> Samples:
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
    st_idx, o_pos = np.nonzero(hist_ok & tgt_ok & active)
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
