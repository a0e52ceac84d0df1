"""Station windows: 24 hourly states per station and origin, and their static features.

The state of a station at hour h is datasets/states.py's (the one rule, shared with the stored
hourly states); it is usable when h - obs <= max_staleness. A window is emitted for every open
station at the origin t: one whose latest record at or before t says installed and renting.
It holds the states at t-23h .. t, oldest first; an hour without a usable state takes the
nearest earlier usable state of the window (a quiet station's state did not change), or,
before the first one, the first later one (still data at or before t). Each window says how
old its state at t is (`state_age_min`, velib_features.state_age_minutes).

A stale station, open by its latest record but with that record older than max_staleness at
t, is decided here (this stage knows max_staleness; the model does not): its window has
`stale` = 1, and its history is its recorded state at each hour however old (its last known
state carried forward; an hour before its first record takes the first one). The model serves
such a window its profile (velib_features.FALLBACKS "profile"), never a forecast from that state.
Every other (station, origin) is counted with the first failing reason, and the filled hours are counted.

States are folded onto a grid (station x hour) with NumPy. Origins are processed in chunks
of WINDOW_CHUNK_HOURS, and a chunk's grid needs only the snapshots of its own span, so
memory follows the span of the windows, not the size of the store.
"""

from __future__ import annotations

import statistics
from bisect import bisect_left, bisect_right
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

import numpy as np

from velibcast import constants as C
from velibcast import storage as st
from velibcast.datasets.csv_tokens import float_tokens
from velibcast.datasets.ingest import PartitionCache, read_stored_states
from velibcast.datasets.quality import QualityTracker
from velibcast.datasets.report import SkipReport, ValidationPolicy
from velibcast.datasets.snapshots import (
    SnapshotColumns,
    SnapshotRef,
    fetch_many,
    list_snapshots,
    parse_snapshot_columns,
    snapshot_key,
)
from velibcast.datasets.states import HourStates, StateRule, StationRegistry, compact, fold_snapshot
from velibcast.timeutil import PARIS, UTC, iso_minute, iso_second
from velibcast.transform_code.velib_features import (
    HISTORY_LEN,
    STATIC_FEATURES,
    TIME_FEATURES,
    UNKNOWN_STATION_INDEX,
    state_age_minutes,
    time_features,
)

HOUR = timedelta(hours=1)


# ---------------------------------------------------------------- origins
def _ceil_hour(ts: datetime) -> datetime:
    ts = ts.astimezone(UTC)
    floor = ts.replace(minute=0, second=0, microsecond=0)
    return floor if floor == ts else floor + HOUR


def origins_for_range(start: datetime, end: datetime) -> list[datetime]:
    """Whole UTC hours in [start, end)."""
    out, t, end = [], _ceil_hour(start), end.astimezone(UTC)
    while t < end:
        out.append(t)
        t += HOUR
    return out


def origins_for_run_date(run_date: date) -> list[datetime]:
    """The hours of one Europe/Paris local day: 23 on the spring change, 25 in autumn."""
    start = datetime.combine(run_date, time(0), PARIS)
    end = datetime.combine(run_date + timedelta(days=1), time(0), PARIS)
    return origins_for_range(start, end)


def history_hours(origins: list[datetime]) -> list[datetime]:
    """Every hour a set of origins reads: t-23h for the first through the last."""
    return origins_for_range(min(origins) - (HISTORY_LEN - 1) * HOUR, max(origins) + HOUR)


def latest_origin(storage: st.Storage, snapshots_root: str, as_of: datetime,
                  max_staleness: timedelta = timedelta(hours=C.MAX_STALENESS_HOURS)) -> datetime | None:
    """The origin of a forecast issued at as_of: the latest whole UTC hour h <= as_of with a capture
    taken in (h - max_staleness, h]; None when no hour of the HISTORY_LEN hours before as_of has one
    (a store silent for a whole window's span has nothing to forecast from).

    At any later hour every state would be older than max_staleness, or not captured yet: at 02:30
    Paris time, inside the scraper's nightly gap, the origin is the hour after the last evening
    capture. Only captures taken at or before as_of are listed.
    """
    search_from = as_of - HISTORY_LEN * HOUR - max_staleness
    captures = [r.capture_ts for r in list_snapshots(storage, snapshots_root, search_from, as_of, as_of=as_of)]
    h = as_of.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    while h > as_of - HISTORY_LEN * HOUR:
        if any(h - max_staleness < c <= h for c in captures):
            return h
        h -= HOUR
    return None


# ---------------------------------------------------------------- static features
# Static features that come from the station's record at t; the others are TIME_FEATURES, from
# the origin's Europe/Paris time (velib_features.time_features, the one calendar rule).
STATION_FEATURES = [f for f in STATIC_FEATURES if f not in TIME_FEATURES]


# ---------------------------------------------------------------- snapshot source
class SnapshotSource:
    """Parsed snapshots of a range, read in capture order and dropped once behind.

    Fetches run ahead with bounded concurrency; a snapshot is parsed once even when two
    chunks need it. Partial snapshots are flagged against the median station count of
    the previous PARTIAL_SNAPSHOT_NEIGHBOURS snapshots. With as_of, no capture taken after
    it is listed or read (list_snapshots).
    """

    def __init__(self, storage: st.Storage, root: str, start: datetime, end: datetime,
                 policy: ValidationPolicy, report: SkipReport, observers: Iterable = (),
                 as_of: datetime | None = None):
        self.storage, self.policy, self.report = storage, policy, report
        self.refs = list_snapshots(storage, root, start, end, report, policy, as_of)
        self.observers = list(observers)
        self._cache: list[SnapshotColumns] = []  # in capture order
        self._parsed: set[str] = set()
        # what the ingest's parse counted for captures whose hours were read from the stored states
        self.stored_findings: dict[str, dict[str, int]] = {}
        self._sizes: deque[int] = deque(maxlen=C.PARTIAL_SNAPSHOT_NEIGHBOURS)
        self.snapshots_read = 0
        self.records_read = 0
        self.registry = StationRegistry()

    def between(self, lo: datetime, hi: datetime, wanted: Callable[[SnapshotRef], bool] | None = None
                ) -> list[SnapshotColumns]:
        """The snapshots captured in [lo, hi] (those `wanted` says, when given); ranges must not move back."""
        self._cache = [c for c in self._cache if c.ref.capture_ts >= lo]
        todo = [r for r in self.refs[bisect_left(self.refs, lo, key=_capture_ts):bisect_right(self.refs, hi, key=_capture_ts)]
                if r.uri not in self._parsed and (wanted is None or wanted(r))]
        for ref, data, raw in fetch_many(self.storage, todo, gunzip_below=C.GUNZIP_AHEAD_MAX_BYTES):
            cols = parse_snapshot_columns(data, ref, self.policy, self.report, self.registry.index, raw)
            self.registry.assign(cols)
            compact(cols)
            self._check_partial(cols)
            for obs in self.observers:
                obs.observe(cols, self.registry.codes)
            self.snapshots_read += 1
            self.records_read += len(cols)
            self._parsed.add(ref.uri)
            self._cache.append(cols)
        if todo and len(self._cache) > len(todo) and todo[0].capture_ts < self._cache[-len(todo) - 1].ref.capture_ts:
            self._cache.sort(key=lambda c: c.ref.capture_ts)
        return [c for c in self._cache if lo <= c.ref.capture_ts <= hi and (wanted is None or wanted(c.ref))]

    def report_stored_findings(self) -> None:
        """Count, once, what parsing counted for the captures read only through the stored states."""
        parsed = {snapshot_key(u) for u in self._parsed}
        for key, counts in sorted(self.stored_findings.items()):
            if key not in parsed:
                for reason, n in counts.items():
                    self.report.add(reason, key, "counted when the hourly states were ingested", n=n)
        self.stored_findings = {}

    def _check_partial(self, cols: SnapshotColumns) -> None:
        if not len(cols):
            return
        if self._sizes:
            median = statistics.median(self._sizes)
            if len(cols) < C.PARTIAL_SNAPSHOT_RATIO * median:
                self.report.add("partial_snapshot", cols.ref.uri,
                                f"{len(cols)} stations, median of the previous {len(self._sizes)} is {median:g}")
                return  # a partial snapshot must not lower the reference
        self._sizes.append(len(cols))


def _capture_ts(ref: SnapshotRef) -> datetime:
    return ref.capture_ts


# ---------------------------------------------------------------- state grid
@dataclass
class StateGrid:
    hours: list[datetime]
    station_codes: list[str]
    bikes: np.ndarray          # float (n_st, n_h), NaN where the state is not usable
    present: np.ndarray        # bool: some record observed at or before h
    usable: np.ndarray         # bool: present and h - obs <= max_staleness
    installed: np.ndarray
    renting: np.ndarray
    capacity: np.ndarray       # int
    lat: np.ndarray
    lon: np.ndarray
    quality: dict | None = None  # data-quality summary of the snapshots read (datasets.quality)
    # int seconds from the chosen record's observed_at to the hour (0 where no record); None: a grid
    # built without observation times, whose states count as observed on the hour
    age_s: np.ndarray | None = None
    # the chosen record's bikes however old (where present), for stale windows; None: `bikes` where usable
    recorded: np.ndarray | None = None

    def hour_pos(self, ts: datetime) -> int:
        j = int((ts - self.hours[0]) / HOUR)
        if not (0 <= j < len(self.hours)) or self.hours[j] != ts:
            raise ValueError(f"hour {iso_minute(ts)} is not on this grid "
                             f"({iso_minute(self.hours[0])} .. {iso_minute(self.hours[-1])})")
        return j


def state_age_min(grid, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """velib_features.STATE_AGE of a grid's cells (rows, cols): what windows send and training learns
    from. A grid without observation times (age_s None) holds states observed on the hour."""
    age_s = getattr(grid, "age_s", None)
    if age_s is None:
        return np.zeros(np.broadcast(rows, cols).shape, dtype=np.int64)
    return state_age_minutes(np.asarray(age_s)[rows, cols].astype(np.int64))


def snapshot_span(hours: list[datetime], max_staleness: timedelta) -> tuple[datetime, datetime]:
    """Captures that can hold a state of these hours (the states rule, datasets/states.py)."""
    return StateRule.for_staleness(max_staleness).capture_span(hours[0], hours[-1])


def snapshot_range(origins: list[datetime], max_staleness: timedelta,
                   lookahead_hours: int = 0) -> tuple[datetime, datetime]:
    """Captures the windows of sorted `origins` (and `lookahead_hours` of targets after them) may read."""
    lo, _ = snapshot_span(history_hours(origins[:1]), max_staleness)
    _, hi = snapshot_span([origins[-1] + lookahead_hours * HOUR], max_staleness)
    return lo, hi


def snapshots_read(storage: st.Storage, snapshots_root: str, origins: list[datetime], max_staleness: timedelta,
                   policy: ValidationPolicy, as_of: datetime | None = None) -> list[SnapshotRef]:
    """The snapshot objects the windows of `origins` read, as listed now (each with its version)."""
    return list_snapshots(storage, snapshots_root, *snapshot_range(sorted(origins), max_staleness), SkipReport(), policy,
                          as_of=as_of)


def build_state_grid(
    storage: st.Storage,
    snapshots_root: str,
    hours: list[datetime],
    max_staleness: timedelta = timedelta(hours=C.MAX_STALENESS_HOURS),
    policy: ValidationPolicy | None = None,
    report: SkipReport | None = None,
    source: SnapshotSource | None = None,
    states_root: str | None = None,
) -> StateGrid:
    """The grid of `hours` from every record read (with states_root: by the windows' rule, the hours
    the stored states settle read from them)."""
    policy = policy or ValidationPolicy()
    report = report if report is not None else SkipReport()
    lo, hi = snapshot_span(hours, max_staleness)
    tracker = None
    if source is None:
        tracker = QualityTracker()
        source = SnapshotSource(storage, snapshots_root, lo, hi, policy, report, [tracker])
    if states_root is not None:
        states = states_of_hours(source, hours, max_staleness, PartitionCache(storage, states_root))
        grid = grid_from_states(states, source.registry.codes, max_staleness)
        source.report_stored_findings()
    else:
        grid = grid_from_snapshots(hours, source.between(lo, hi), max_staleness, source.registry)
    if tracker is not None:
        grid.quality = tracker.to_dict()
    return grid


def grid_from_snapshots(hours: list[datetime], snapshots: list[SnapshotColumns], max_staleness: timedelta,
                        registry: StationRegistry | None = None, bounded_lookback: bool = False) -> StateGrid:
    """The grid of `hours` from parsed snapshots, by the states rule (datasets/states.py).

    With bounded_lookback (the chunked window path), an hour's state comes from the captures the
    rule allows for it, so a grid never depends on how origins were chunked; without it
    (build_state_grid), from every record read.
    """
    snapshots = [c for c in snapshots if len(c)]
    if registry is None or any(s.station_ids is None for s in snapshots):
        registry = StationRegistry()
        for s in snapshots:
            registry.assign(s)
    rule = StateRule.for_staleness(max_staleness) if bounded_lookback else StateRule(None, None)
    states = HourStates(hours, rule)
    states.grow(len(registry.codes))
    for s in snapshots:
        fold_snapshot(states, s)
    return grid_from_states(states, registry.codes, max_staleness)


def grid_from_states(states: HourStates, codes: list[str], max_staleness: timedelta) -> StateGrid:
    """A StateGrid of the stations with a state at some hour (`codes` names the rows), in code
    order: the chosen records as the windows read them, usable when observed within max_staleness."""
    hours = states.hours
    rows = np.flatnonzero(states.present.any(axis=1))
    if not len(rows):
        empty = np.zeros((0, len(hours)))
        return StateGrid(hours, [], empty, empty.astype(bool), empty.astype(bool), empty.astype(bool),
                         empty.astype(bool), empty.astype(np.int64), empty, empty)
    seen_codes = np.array([codes[i] for i in rows.tolist()], dtype=object)
    # Station order on the grid is the sorted codes, so the output never depends on read order.
    by_code = np.argsort(seen_codes, kind="stable")
    rows = rows[by_code]
    present = states.present[rows]
    age_s = np.where(present, states.hours_s[None, :] - states.obs[rows], 0)
    usable = present & (age_s <= int(max_staleness.total_seconds()))

    def col(name):
        return states.column(name, rows)

    recorded = col("bikes")
    return StateGrid(
        hours=list(hours),
        station_codes=seen_codes[by_code].tolist(),
        bikes=np.where(usable, recorded.astype(np.float64), np.nan),
        present=present,
        usable=usable,
        installed=present & col("installed"),
        renting=present & col("renting"),
        capacity=col("capacity").astype(np.int32),
        lat=col("lat"),
        lon=col("lon"),
        age_s=age_s.astype(np.int32),  # a stale state is days old at most: far inside int32 seconds
        recorded=recorded,
    )


# ---------------------------------------------------------------- windows of one origin, as columns
@dataclass
class WindowBatch:
    """The windows of one origin as arrays: no Python object per window on the assembly path."""

    origin_ts: datetime
    station_codes: np.ndarray   # object (str), one per window
    history: np.ndarray         # int64 (n, HISTORY_LEN), oldest first
    time_features: tuple        # velib_features.time_features of the origin in Paris time: TIME_FEATURES in order
    capacity: np.ndarray        # int64
    station_index: np.ndarray   # int64; UNKNOWN_STATION_INDEX where unknown
    lat: np.ndarray
    lon: np.ndarray
    state_age_min: np.ndarray   # int64: velib_features.STATE_AGE, minutes from the state's observed_at to t
    stale: np.ndarray           # int64: 1 where that state is older than max_staleness (the profile serves it)
    unknown_station: np.ndarray  # bool
    code_bytes: np.ndarray      # station codes as UTF-8 bytes ("S"), for the CSV encoder
    float_text: dict = field(default_factory=dict)  # {"lat": "<repr>," tokens, ...}, formatted once per grid

    def __len__(self) -> int:
        return len(self.station_codes)

    @property
    def origin_label(self) -> str:
        return f"{iso_minute(self.origin_ts)}"

    def record_ids(self) -> list[str]:
        suffix = "@" + self.origin_label
        return [c + suffix for c in self.station_codes.tolist()]

    def static_column(self, name: str) -> np.ndarray:
        """One STATIC_FEATURES column, the origin's time features broadcast to every window."""
        if name in STATION_FEATURES:
            return getattr(self, name)
        return np.full(len(self), self.time_features[TIME_FEATURES.index(name)], dtype=np.int64)

    def feature_rows(self) -> list[list]:
        """Rows in FEATURE_COLUMNS order (for JSON Lines and tests; CSV shards are encoded from the arrays)."""
        static = [self.static_column(f).tolist() for f in STATIC_FEATURES]
        return [[*h, *s] for h, s in zip(self.history.tolist(), zip(*static))]


def _count(report: SkipReport, reason: str, mask: np.ndarray, grid: StateGrid, where: str, detail: str) -> None:
    n = int(mask.sum())
    if n:
        first = [grid.station_codes[i] for i in np.flatnonzero(mask)[: report.max_examples]]
        report.add(reason, where, f"{detail}; e.g. stations {', '.join(first)}", n=n)


def fill_history(bikes: np.ndarray, usable: np.ndarray) -> None:
    """Fill in place the hours without a usable (for a stale window: known) state of windows (rows)
    over t-23h .. t (columns), each with one at t.

    Such an hour takes the state of the nearest earlier usable hour of the window: a station that
    publishes nothing has not changed. Before the window's first usable hour there is none, so
    those hours take the first usable one, which is still at or before t.
    """
    rows = np.flatnonzero(~usable.all(axis=1))  # only these have an hour to fill: few, on a large network too
    gaps = usable[rows]
    hours = np.arange(bikes.shape[1])
    last_usable = np.maximum.accumulate(np.where(gaps, hours, -1), axis=1)
    first_usable = np.argmax(gaps, axis=1)[:, None]
    source = np.where(last_usable >= 0, last_usable, first_usable)
    bikes[rows] = np.take_along_axis(bikes[rows], source, axis=1)


class CoordText:
    """The CSV text of each station's lat/lon on the last grid, reused by the next grid when no
    station moved or appeared: 100,000 stations were 1 s of repr() a grid (bench/windows.py)."""

    def __init__(self):
        self.codes: list[str] = []
        self.lat = self.lon = np.empty(0)
        self.text: tuple = ({}, {})

    def of(self, grid: StateGrid) -> tuple:
        lat, lon = grid.lat[:, -1], grid.lon[:, -1]
        if not (self.codes == grid.station_codes and np.array_equal(self.lat, lat) and np.array_equal(self.lon, lon)):
            # copies: a column view would keep the whole grid alive into the next chunk (+50 MB at 100,000 stations)
            self.codes, self.lat, self.lon = grid.station_codes, lat.copy(), lon.copy()
            self.text = (float_tokens(lat), float_tokens(lon)) if len(lat) else ({}, {})
        return self.text


@dataclass
class WindowSummary:
    """What the windows of a range cover, in total and per origin.

    Open stations are those whose latest record at or before t says installed and renting, even
    when it is older than max_staleness (as far back as a grid looks: StateGrid.present): the
    stations a forecast is owed to. Their share with a window is `open_coverage`: every one has
    one, the stale ones (`windows_stale`) served the profile.
    """

    origins: int = 0
    windows_emitted: int = 0
    windows_unknown_station: int = 0
    stations: set = field(default_factory=set)
    snapshots_read: int = 0
    records_read: int = 0
    by_origin: dict = field(default_factory=dict)  # origin (ISO minute) -> its counts, as to_dict shows them

    def add_origin(self, origin: datetime, open_stations: int, hours_filled: np.ndarray, unknown: np.ndarray,
                   stale: int = 0) -> None:
        """An origin's windows, by the hours filled in each (fill_history), whether their station
        is missing from the model's mapping, and how many are stale."""
        self.by_origin[iso_minute(origin)] = {
            "open_stations": open_stations,
            "windows": len(hours_filled),
            "windows_stale": stale,
            "windows_filled": int(np.count_nonzero(hours_filled)),
            "hours_filled": int(hours_filled.sum()),
        }
        self.windows_emitted += len(hours_filled)
        self.windows_unknown_station += int(unknown.sum())

    def to_dict(self) -> dict:
        def total(key: str) -> int:
            return sum(o[key] for o in self.by_origin.values())

        open_stations = total("open_stations")
        return {"origins": self.origins, "windows_emitted": self.windows_emitted,
                "windows_unknown_station": self.windows_unknown_station,
                "stations_seen": len(self.stations), "snapshots_read": self.snapshots_read,
                "records_read": self.records_read,
                "open_station_origins": open_stations,
                "open_coverage": self.windows_emitted / open_stations if open_stations else None,
                "windows_stale": total("windows_stale"),
                "windows_filled": total("windows_filled"), "hours_filled": total("hours_filled"),
                "by_origin": dict(sorted(self.by_origin.items()))}


def batches_from_grid(
    grid: StateGrid, origins: list[datetime], station_index: dict[str, int], report: SkipReport,
    coord_text: CoordText | None = None, summary: WindowSummary | None = None,
) -> Iterator[WindowBatch]:
    """One WindowBatch per origin with windows; every other (station, origin) counted with its
    first failing reason, the filled hours counted as notes (and per origin in `summary`)."""
    codes = np.array(grid.station_codes, dtype=object)
    code_bytes = np.array([c.encode() for c in grid.station_codes], dtype="S")
    # lat/lon text for the CSV shards, formatted once per grid rather than once per window
    lat_text, lon_text = (coord_text or CoordText()).of(grid)
    index = np.array([station_index.get(c, -1) for c in grid.station_codes], dtype=np.int64)
    on_grid = set(grid.station_codes)
    missing = sorted(c for c in station_index if c not in on_grid)
    for t in origins:
        if grid.hour_pos(t) < HISTORY_LEN - 1:
            raise ValueError(f"origin {iso_minute(t)} needs {HISTORY_LEN - 1} h of history before it on the grid")
    recorded = grid.recorded if grid.recorded is not None else grid.bikes
    for t in origins:
        j = grid.hour_pos(t)
        where = f"origin {iso_minute(t)}"
        present, usable = grid.present[:, j], grid.usable[:, j]
        installed, renting = grid.installed[:, j], grid.renting[:, j]
        is_open = installed & renting  # by the latest record, however old (installed and renting imply present)
        # stale: open, but its state is older than max_staleness; its window is served the profile
        stale = is_open & ~usable & np.isfinite(recorded[:, j])
        _count(report, "missing_at_origin", ~present, grid, where, "no record at or before t")
        _count(report, "stale_at_origin", present & ~usable & ~stale, grid, where,
               "the state at t is older than max_staleness and does not say installed and renting")
        _count(report, "not_installed", usable & ~installed, grid, where, "not installed at t")
        _count(report, "not_renting", usable & installed & ~renting, grid, where, "not renting at t")
        if missing:
            report.add("missing_station", where,
                       f"in the station mapping but in no snapshot; e.g. {', '.join(missing[:report.max_examples])}",
                       n=len(missing))
        emit = np.flatnonzero((usable & is_open) | stale)
        window = slice(j - HISTORY_LEN + 1, j + 1)
        is_stale = stale[emit]
        history = grid.bikes[emit, window]  # a copy (an index array selects the rows)
        known = grid.usable[emit, window]
        if is_stale.any():  # the recorded state however old: the station's last known state, carried
            rows = emit[is_stale]
            history[is_stale] = recorded[rows, window]
            known[is_stale] = grid.present[rows, window] & np.isfinite(history[is_stale])
        fill_history(history, known)
        hours_filled = np.count_nonzero(~grid.usable[emit, window], axis=1)  # a stale window's carried hours too
        refilled = np.flatnonzero(hours_filled)
        if len(refilled):
            report.add("filled_history", where, "hours of t-23h..t-1 without a usable state, carried from the "
                       f"nearest usable hour; e.g. stations {', '.join(codes[emit[refilled[:report.max_examples]]])}",
                       n=len(refilled))
            report.add("filled_hours", where, "hours carried in those windows", n=int(hours_filled.sum()))
        idx = index[emit]
        unknown = idx < 0
        if unknown.any():
            report.add("unknown_station", where,
                       f"not in the model's station mapping, sent with index {UNKNOWN_STATION_INDEX}; "
                       f"e.g. {', '.join(codes[emit[unknown][:report.max_examples]])}", n=int(unknown.sum()))
        if summary is not None:
            summary.add_origin(t, int(is_open.sum()), hours_filled, unknown, int(is_stale.sum()))
        if not len(emit):
            continue
        # where no emitted station has moved since t (nearly always), its lat/lon text is the last hour's
        still = (grid.lat[emit, j] == grid.lat[emit, -1]).all() and (grid.lon[emit, j] == grid.lon[emit, -1]).all()
        yield WindowBatch(
            origin_ts=t,
            station_codes=codes[emit],
            history=history.astype(np.int64),
            time_features=time_features(t.astimezone(PARIS)),
            capacity=grid.capacity[emit, j],
            station_index=np.where(unknown, UNKNOWN_STATION_INDEX, idx),
            lat=grid.lat[emit, j],
            lon=grid.lon[emit, j],
            state_age_min=state_age_min(grid, emit, np.full(len(emit), j)),
            stale=is_stale.astype(np.int64),
            unknown_station=unknown,
            code_bytes=code_bytes[emit],
            float_text={"lat": lat_text[emit], "lon": lon_text[emit]} if still else {},
        )


def states_of_hours(source: SnapshotSource, hours: list[datetime], max_staleness: timedelta,
                    stored: PartitionCache | None) -> HourStates:
    """The states of `hours` by the rule of max_staleness: those the stored states settle for this
    source's listing, the others folded from the raw captures (read through `source`)."""
    rule = StateRule.for_staleness(max_staleness)
    states = HourStates(hours, rule)
    settled = (read_stored_states(stored, states, source.registry, source.refs, max_staleness,
                                  source.stored_findings)
               if stored is not None else np.zeros(len(hours), dtype=bool))
    open_hours = ~settled
    if open_hours.any():
        pos = np.flatnonzero(open_hours)
        lo, hi = rule.capture_span(hours[pos[0]], hours[pos[-1]])

        def wanted(ref: SnapshotRef) -> bool:  # the captures that may hold a state of an open hour
            return bool(open_hours[rule.hours_of(int(ref.capture_ts.timestamp()), states.hours_s)].any())

        for cols in source.between(lo, hi, wanted):
            fold_snapshot(states, cols, only=open_hours)
    return states


# ---------------------------------------------------------------- streaming over a range
def iter_state_grids(
    storage: st.Storage,
    snapshots_root: str,
    origins: list[datetime],
    report: SkipReport,
    max_staleness: timedelta = timedelta(hours=C.MAX_STALENESS_HOURS),
    policy: ValidationPolicy | None = None,
    summary: WindowSummary | None = None,
    observers: Iterable = (),
    chunk_hours: int = C.WINDOW_CHUNK_HOURS,
    lookahead_hours: int = 0,
    grid_cells_max: int | None = C.WINDOW_GRID_CELLS_MAX,
    as_of: datetime | None = None,
    states_root: str | None = None,
) -> Iterator[tuple[list[datetime], StateGrid]]:
    """(origins of a chunk, grid over t-23h of the first .. the last + lookahead_hours), chunk by chunk.

    The one path from snapshots to hourly states: serving windows read it with lookahead 0,
    training samples with the forecast horizons as lookahead. Each snapshot is parsed once.
    With grid_cells_max, a chunk holds as many origins (up to chunk_hours) as keep stations x
    grid hours under it, so memory follows the network's size, not only the range (100,000
    stations: 7 origins a chunk). The stations are counted in the snapshots of the first
    origin's hours, which the first chunk reads anyway: sized before any was read, the first
    chunk was one origin, and the real nightly built two grids where one holds it (~10 ms).

    With as_of, only captures taken at or before it are read, and an origin after it is refused:
    its window would be built from data its time could not have had.

    With states_root (a store root holding the hourly states, datasets/ingest.py), every hour
    the stored states settle for this run (ingested from exactly the captures it lists) is read
    from them, and raw captures are read only for the other hours.
    """
    policy = policy or ValidationPolicy()
    summary = summary if summary is not None else WindowSummary()
    origins = sorted(origins)
    if not origins:
        return
    if as_of is not None and origins[-1] > as_of:
        raise ValueError(f"origin {iso_minute(origins[-1])} is after the run's as-of time {iso_second(as_of)}")
    ahead = lookahead_hours * HOUR

    def grid_hours(chunk: list[datetime]) -> list[datetime]:  # t-23h of the first .. the last + lookahead
        return origins_for_range(chunk[0] - (HISTORY_LEN - 1) * HOUR, chunk[-1] + ahead + HOUR)

    source = SnapshotSource(storage, snapshots_root, *snapshot_range(origins, max_staleness, lookahead_hours),
                            policy, report, observers, as_of)
    stored = PartitionCache(storage, states_root) if states_root is not None else None

    def chunk_states(hours: list[datetime]) -> HourStates:
        return states_of_hours(source, hours, max_staleness, stored)

    first: HourStates | None = None  # the states the sizing built, used again when the first chunk is that one origin
    k = 0
    while k < len(origins):
        size = chunk_hours
        if grid_cells_max is not None:
            if k == 0 and stored is None:  # the stations of the first origin's captures
                source.between(*snapshot_span(grid_hours(origins[:1]), max_staleness))
            elif k == 0:  # and of its stored states
                first = chunk_states(grid_hours(origins[:1]))
            n_st = len(source.registry.codes)
            fits = grid_cells_max // n_st - (HISTORY_LEN - 1) - lookahead_hours if n_st else 1
            size = max(1, min(chunk_hours, fits))
        chunk = origins[k:k + size]
        k += size
        hours = grid_hours(chunk)
        states = first if first is not None and first.hours == hours else chunk_states(hours)
        first = None
        grid = grid_from_states(states, source.registry.codes, max_staleness)
        del states
        summary.stations.update(grid.station_codes)
        summary.origins += len(chunk)
        summary.snapshots_read = source.snapshots_read
        summary.records_read = source.records_read
        yield chunk, grid
        # Dropped before the next chunk's snapshots are parsed and its grid built: two grids at
        # once were ~100 MB of the 100,000-station peak (bench/windows.py).
        del grid
    source.report_stored_findings()


def iter_window_batches(
    storage: st.Storage,
    snapshots_root: str,
    origins: list[datetime],
    station_index: dict[str, int],
    report: SkipReport,
    max_staleness: timedelta = timedelta(hours=C.MAX_STALENESS_HOURS),
    policy: ValidationPolicy | None = None,
    summary: WindowSummary | None = None,
    observers: Iterable = (),
    chunk_hours: int = C.WINDOW_CHUNK_HOURS,
    as_of: datetime | None = None,
    states_root: str | None = None,
) -> Iterator[WindowBatch]:
    """The windows of any range, one origin at a time, memory bounded by one chunk's grid;
    with as_of, from the captures taken at or before it only."""
    summary = summary if summary is not None else WindowSummary()
    coord_text = CoordText()
    for chunk, grid in iter_state_grids(storage, snapshots_root, origins, report, max_staleness, policy,
                                        summary, observers, chunk_hours, as_of=as_of, states_root=states_root):
        yield from batches_from_grid(grid, chunk, station_index, report, coord_text, summary)
        del grid  # not held while the next chunk is built (see iter_state_grids)
