"""Supervised samples (features + the bikes at T+1h..T+MAX_HORIZON) from an hourly state grid.

The window rule is the serving rule (velibcast.datasets.windows): all 24 states t-23h..t
usable, station installed and renting at t (so `stale` is 0: a stale window is served the
profile, never the model), `state_age_min` read from the grid as the windows read it. A target
that is not usable, not observed (either rule of datasets.observed) or beyond the span is NaN: an
origin trains the horizons it has (dropping every origin with one missing target out of 24 would
drop most of them on the 2022 store, whose captures drift around the hour), and an origin with no
target at all is dropped. The grid is read by attribute (hours, station_codes, bikes, installed,
renting, capacity, lat, lon and, when it has them, age_s), so velibcast.datasets' StateGrid and the
synthetic grid of the tests both work; vectorised over stations, since a training span has ~100k windows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from velibcast import constants as C
from velibcast.datasets.observed import capture_times, news_since_origin, observed_hours
from velibcast.datasets.report import SkipReport
from velibcast.datasets.windows import iter_state_grids, origins_for_range, state_age_min
from velibcast.timeutil import PARIS, iso_minute
from velibcast.transform_code import velib_features as F


@dataclass
class Samples:
    x: np.ndarray            # (n, len(FEATURE_COLUMNS)) float32, FEATURE_COLUMNS order
    y: np.ndarray            # (n, MAX_HORIZON) float32, bikes at t+1h..t+MAX_HORIZON, NaN when unknown
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

    def targets_before(self, hour: int) -> Samples:
        """What a model trained before grid hour `hour` may learn: targets at or after it become NaN,
        and origins left without any target are dropped."""
        late = self.origin[:, None] + np.arange(1, F.MAX_HORIZON + 1)[None, :] >= hour
        y = np.where(late, np.float32(np.nan), self.y)
        keep = (self.origin < hour) & np.isfinite(y).any(axis=1)
        return Samples(self.x[keep], y[keep], self.origin[keep], self.station[keep], self.hours,
                       None if self.codes is None else self.codes[keep])


def as_stale(x: np.ndarray) -> np.ndarray:
    """Sample windows with the `stale` flag set, as the window stage sends a state too old to forecast
    from: what a model serves them is its fallback for stale stations (the profile). Its errors on
    them are that fallback's, since the profile reads no state."""
    stale = np.array(x, dtype=np.float64)
    stale[:, F.COL[F.STALE]] = 1
    return stale


def station_mapping(codes) -> dict[str, int]:
    """Known stations get 1..N in sorted code order; 0 stays reserved for unknown ones."""
    return {code: i + 1 for i, code in enumerate(sorted(set(codes)))}


def calendar(hour_utc: datetime) -> tuple[int, int, int, int, int, int]:
    """TIME_FEATURES of an origin, by the one calendar rule the serving windows use (no skew)."""
    return F.time_features(hour_utc.astimezone(PARIS))


def non_working(hour_utc: datetime) -> bool:
    """Weekend or French public holiday in Europe/Paris: for metrics by day type."""
    return F.is_non_working_day(hour_utc.astimezone(PARIS).date())


def samples_from_grid(grid, mapping: dict[str, int], observed: np.ndarray | None = None,
                      report: SkipReport | None = None, last_hour: int | None = None) -> Samples:
    """Origins are the grid hours with 24 h of history before them and MAX_HORIZON hours after.
    `observed` (one bool per grid hour, datasets.observed): a target hour without a capture is NaN and
    counted as target_not_observed in `report`; None takes every hour as observed. A target whose state
    is the origin's own record (datasets.observed.news_since_origin) is NaN and counted as
    target_is_origin_record. Targets after grid
    hour `last_hour` (the end of a training span) are NaN, not counted: they are not the span's to learn."""
    bikes = np.asarray(grid.bikes, dtype=np.float64)
    n_st, n_h = bikes.shape
    L, H = F.HISTORY_LEN, F.MAX_HORIZON
    origins = np.arange(L - 1, n_h - H)
    if len(origins) == 0:
        return _empty(list(grid.hours))
    usable = np.isfinite(bikes)
    # Counts of usable hours over each history, by cumulative sums: O(stations x hours).
    cum = np.concatenate([np.zeros((n_st, 1), int), np.cumsum(usable, axis=1)], axis=1)
    hist_ok = (cum[:, origins + 1] - cum[:, origins + 1 - L]) == L
    active = np.asarray(grid.installed, bool)[:, origins] & np.asarray(grid.renting, bool)[:, origins]
    st_idx, o_pos = np.nonzero(hist_ok & active)
    o = origins[o_pos]
    target_pos = o[:, None] + np.arange(1, H + 1)[None, :]
    y = bikes[st_idx[:, None], target_pos]
    if last_hour is not None:
        y[target_pos > last_hour] = np.nan
    if observed is not None:
        unseen = np.isfinite(y) & ~np.asarray(observed, bool)[target_pos]
        if report is not None and unseen.any():
            first = int(target_pos[unseen].min())
            report.add("target_not_observed", f"{int(unseen.sum())} targets",
                       f"no capture within {C.TARGET_CAPTURE_TOLERANCE_MINUTES} min of a target hour "
                       f"(first {iso_minute(grid.hours[first])})", n=int(unseen.sum()))
        y[unseen] = np.nan
    no_news = np.isfinite(y) & ~news_since_origin(grid, st_idx[:, None], o[:, None], target_pos)
    if report is not None and no_news.any():
        report.add("target_is_origin_record", f"{int(no_news.sum())} targets",
                   "the station's state at the target hour is its record at the origin: nothing new "
                   "was observed between them", n=int(no_news.sum()))
    y[no_news] = np.nan
    keep = np.isfinite(y).any(axis=1)
    st_idx, o, y = st_idx[keep], o[keep], y[keep]
    hist = bikes[st_idx[:, None], o[:, None] + np.arange(-L + 1, 1)[None, :]]
    cal = np.array([calendar(h) for h in grid.hours], dtype=np.float64)
    codes = list(grid.station_codes)
    index = np.array([mapping.get(c, F.UNKNOWN_STATION_INDEX) for c in codes], dtype=np.float64)
    columns = {name: cal[o, k] for k, name in enumerate(F.TIME_FEATURES)} | {
        "capacity": np.asarray(grid.capacity, np.float64)[st_idx, o],
        "station_index": index[st_idx],
        "lat": np.asarray(grid.lat, np.float64)[st_idx, o],
        "lon": np.asarray(grid.lon, np.float64)[st_idx, o],
        F.STATE_AGE: state_age_min(grid, st_idx, o),
        F.STALE: np.zeros(len(o)),  # only windows usable at t are samples
    }
    static = np.column_stack([columns[name] for name in F.STATIC_FEATURES])
    x = np.concatenate([hist, static], axis=1).astype(np.float32)
    return Samples(x, y.astype(np.float32), o, st_idx, list(grid.hours))


def _empty(hours: list[datetime]) -> Samples:
    return Samples(np.empty((0, len(F.FEATURE_COLUMNS)), np.float32), np.empty((0, F.MAX_HORIZON), np.float32),
                   np.empty(0, int), np.empty(0, int), hours, np.empty(0, dtype=object))


def stream_samples(storage, snapshots_root: str, start: datetime, end: datetime, report=None,
                   chunk_hours: int = C.TRAIN_CHUNK_HOURS,
                   states_root: str | None = None) -> tuple[Samples, dict[str, int]]:
    """Samples of every origin whose history lies in the hours [start, end], chunk by chunk, with its
    targets in them; a target must be observed (datasets.observed), the others are NaN, counted in `report`.

    The serving window path's own grids (datasets.windows.iter_state_grids, the horizons as
    lookahead): each snapshot is parsed once and one chunk's grid is alive at a time, so
    memory grows with the samples (36 float32 features + 24 targets, ~240 bytes each), not
    with the snapshots. With states_root (a store root holding states/, docs/states-dataset.md),
    the hours its stored states settle are read from them instead of parsed: the same samples.
    Returns the samples, with station indices from the mapping of every station seen, and that mapping.
    """
    report = report if report is not None else SkipReport()
    hour = timedelta(hours=1)
    L, H = F.HISTORY_LEN, F.MAX_HORIZON
    hours = origins_for_range(start, end + hour)
    # Every origin with history in the span and a target in it; targets after `end` are masked.
    origins = hours[L - 1 : len(hours) - 1]
    parts, seen = [], set()
    captures = capture_times(storage, snapshots_root, hours[0], hours[-1])
    for _chunk, grid in iter_state_grids(storage, snapshots_root, origins, report,
                                        timedelta(hours=C.MAX_STALENESS_HOURS), chunk_hours=chunk_hours,
                                        lookahead_hours=H, states_root=states_root):
        offset = int((grid.hours[0] - hours[0]) / hour)
        s = samples_from_grid(grid, {}, observed_hours(grid.hours, captures), report,
                              last_hour=len(hours) - 1 - offset)
        seen.update(grid.station_codes)  # a station with no full window yet is still known to the model
        parts.append((s.x, s.y, s.origin + offset, np.asarray(grid.station_codes, dtype=object)[s.station]
                      if len(s) else np.empty(0, dtype=object)))
    if not parts or not sum(len(p[1]) for p in parts):
        return _empty(hours), station_mapping(seen)
    x, y, origin, codes = (np.concatenate(a) for a in zip(*parts))
    mapping = station_mapping(seen)
    x[:, F.COL["station_index"]] = np.array([mapping[c] for c in codes.tolist()], dtype=np.float32)
    station = np.array([mapping[c] - 1 for c in codes.tolist()], dtype=np.int64)
    return Samples(x, y, origin, station, hours, codes), mapping
