"""The hourly station states: the state of each station at each whole UTC hour, by one rule.

The rule: the state of a station at hour h is its record with the latest observation time
(duedate, else capture time) <= h, among the captures taken in [h - lookback, h + lag]. Of the
captures holding a record observed at that time, the last one's values are the state's, and the
state cites (captured_at, source_object) the first capture of the last run of them, in capture
order, that held exactly those values: since when the feed shows this state. `lag` is
LATE_CAPTURE_HOURS (a record observed before h can be captured that much later); `lookback` is
max_staleness plus LISTING_MARGIN_HOURS (an older capture holds no state a run may use at h).
Whether a state is usable (h - observed_at <= max_staleness) is the reader's to say: max_staleness
is a run setting.

Why the last capture's values among equal observation times: the feed's duedate lags its counts.
In the 2022 sample (sample_data/), most records that repeat a station's duedate from an earlier
capture carry other counts (bikes, docks, mechanical/ebike; docs/states-dataset.md), so the later
capture holds the fresher state. Why the first capture of the run: a station whose feed stalled
repeats its record in every capture, and a capture that only repeats a state must leave it as it
is, so an ingest rewrites only the hours whose rows change (datasets/ingest.py).

The state is a function of the set of captures near h (their capture times order them), but a
fold one capture at a time is exact only in capture order: HourStates folds captures into an
hour in that order (a later capture holding the state's observation time with the same values
leaves it, with other values replaces it), and refuses an earlier capture after a later one. The window path (datasets/windows.py) folds the
captures it reads in capture order; the stored dataset (datasets/ingest.py) folds a new capture
into an hour's stored rows only when it is later than every capture of that hour, and rebuilds
the hour from its captures otherwise. Both fold with this class; nothing else decides a state.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from operator import itemgetter

import numpy as np
import pyarrow as pa

from velibcast import constants as C
from velibcast.datasets.snapshots import SnapshotColumns, snapshot_key
from velibcast.timeutil import UTC

HOUR_S = 3600
ABSENT = np.iinfo(np.int64).min  # no record yet: any observation time is later
# How long after its observation a record may still be captured and change an hour's state. The
# listing's CAPTURE_LAG_MAX_HOURS covers the daytime refresh lag; the scraper's nightly gap holds
# records back longer, and a window reads the state of its earliest hour from captures up to a day
# later, so the rule reaches this far (the real 2022 series needs more than CAPTURE_LAG_MAX_HOURS).
LATE_CAPTURE_HOURS = 12
# Of records observed at the same time: names the tie-break in each stored date's ledger, so a date
# stored by another tie-break is rebuilt, not mixed with this one.
SAME_OBSERVATION = "the latest capture's values, since the first capture of their last repeat"
FIELDS = ("bikes", "mechanical", "ebike", "docks", "capacity", "installed", "renting", "returning", "lat", "lon")


@dataclass(frozen=True)
class StateRule:
    """Which captures may hold the state of an hour: those taken in [h - lookback, h + lag].
    None: unbounded on that side (a grid that keeps every record it read)."""

    lookback: timedelta | None = timedelta(hours=C.MAX_STALENESS_HOURS + C.LISTING_MARGIN_HOURS)
    lag: timedelta | None = timedelta(hours=LATE_CAPTURE_HOURS)

    @classmethod
    def for_staleness(cls, max_staleness: timedelta) -> StateRule:
        return cls(max_staleness + timedelta(hours=C.LISTING_MARGIN_HOURS))

    def hours_of(self, capture_s: int, hours_s: np.ndarray) -> np.ndarray:
        """Positions in sorted `hours_s` of the hours a capture taken at `capture_s` may hold a state of."""
        lo = 0 if self.lag is None else np.searchsorted(hours_s, capture_s - int(self.lag.total_seconds()), side="left")
        hi = len(hours_s) if self.lookback is None else np.searchsorted(
            hours_s, capture_s + int(self.lookback.total_seconds()), side="right")
        return np.arange(lo, hi)

    def capture_span(self, first_hour: datetime, last_hour: datetime) -> tuple[datetime, datetime]:
        """The captures that may hold a state of [first_hour, last_hour] (bounded rules only)."""
        assert self.lookback is not None and self.lag is not None
        return first_hour - self.lookback, last_hour + self.lag


TABLE_RULE = StateRule()  # the stored dataset's: the default max_staleness


class HourStates:
    """The chosen record of each station (row: a StationRegistry id) at each hour (column).

    Records are folded in by `add_capture` (a capture's, for the hours the rule lets it reach, in
    capture order) and `add_states` (stored rows, each for its own hour, before any capture); their
    fields stay in the blocks they came in, and the chosen one's position is kept per cell, so a
    fold costs a comparison per record and hour, and the fields are compared only for records
    observed at the time of the cell's state. `column` gathers a field for every cell.
    """

    def __init__(self, hours: list[datetime], rule: StateRule):
        self.hours = list(hours)
        self.hours_s = np.array([int(h.timestamp()) for h in hours], dtype=np.int64)
        self.rule = rule
        # hour-major (hour, station): an hour's cells are contiguous, as a capture and a stored
        # hour update them; obs, cap and src are the (station, hour) views readers index
        n_h = len(hours)
        self._obs = np.full((n_h, 0), ABSENT, dtype=np.int64)
        self._cap = np.full((n_h, 0), ABSENT, dtype=np.int64)
        self._src = np.full((n_h, 0), -1, dtype=np.int64)
        self._latest = np.full(n_h, ABSENT, dtype=np.int64)  # the latest capture folded into each hour
        self.blocks: list[dict[str, np.ndarray]] = []
        self._starts: list[int] = []  # each block's first position in the pool
        self.sources: list[str] = []  # the capture objects' keys (snapshot_key), by the "source" field's number
        self._pooled = 0

    @property
    def obs(self) -> np.ndarray:
        return self._obs.T

    @property
    def cap(self) -> np.ndarray:
        return self._cap.T

    @property
    def src(self) -> np.ndarray:
        return self._src.T

    @property
    def n_stations(self) -> int:
        return self._obs.shape[1]

    def grow(self, n_stations: int) -> None:
        if n_stations > self.n_stations:
            self._obs = _widen(self._obs, n_stations, ABSENT)
            self._cap = _widen(self._cap, n_stations, ABSENT)
            self._src = _widen(self._src, n_stations, -1)

    def source_number(self, uri: str) -> int:
        self.sources.append(uri)
        return len(self.sources) - 1

    def _pool(self, block: dict[str, np.ndarray], n: int) -> int:
        base = self._pooled
        self.blocks.append(block)
        self._starts.append(base)
        self._pooled += n
        return base

    def add_capture(self, ids: np.ndarray, obs: np.ndarray, capture_s: int, block: dict[str, np.ndarray],
                    only: np.ndarray | None = None) -> None:
        """Fold in one capture's records (station ids, observation seconds, fields); `only`: a bool
        per hour, the hours that may change (the others are settled elsewhere). Captures are folded
        into an hour in capture order (ValueError otherwise): a record observed at the hour's time
        with the same values as its state leaves that state as it is, and only the order says so."""
        self.grow(int(ids.max()) + 1 if len(ids) else 0)
        base = self._pool(block, len(ids))
        for j in self.rule.hours_of(capture_s, self.hours_s).tolist():
            if only is not None and not only[j]:
                continue
            if capture_s < self._latest[j]:
                raise ValueError(f"capture at {capture_s} folded into hour {self.hours[j]} after a later one")
            self._latest[j] = capture_s
            cur_o = self._obs[j, ids]
            seen = obs <= self.hours_s[j]
            newer = seen & (obs > cur_o)
            same = np.flatnonzero(seen & (obs == cur_o))
            newer[same] = ~self._same_values(self._src[j, ids[same]], block, same)
            rows = np.flatnonzero(newer)
            w = ids[rows]
            self._obs[j, w] = obs[rows]
            self._cap[j, w] = capture_s
            self._src[j, w] = base + rows

    def _same_values(self, src: np.ndarray, block: dict[str, np.ndarray], rows: np.ndarray) -> np.ndarray:
        """Whether the pooled records `src` hold the values of `block`'s records `rows`, field by field."""
        same = np.ones(len(src), dtype=bool)
        if not len(src):
            return same
        which = np.searchsorted(self._starts, src, side="right") - 1
        if which[0] == which[-1] and (which == which[0]).all():  # mostly: one capture's records
            groups = [np.arange(len(src))]
        else:
            by_block = np.argsort(which, kind="stable")
            groups = np.split(by_block, np.flatnonzero(np.diff(which[by_block])) + 1)
        for sel in groups:
            b = int(which[sel[0]])
            held, at, new = self.blocks[b], src[sel] - self._starts[b], rows[sel]
            for f in FIELDS:
                same[sel] &= held[f][at] == block[f][new]
        return same

    def repeats(self, j: int, ids: np.ndarray, obs: np.ndarray, block: dict[str, np.ndarray]) -> np.ndarray:
        """Which of a capture's records hold exactly the state of hour j: its observation time and values."""
        out = np.zeros(len(ids), dtype=bool)
        known = np.flatnonzero(ids < self.n_stations)
        same = known[self._obs[j, ids[known]] == obs[known]]
        out[same] = self._same_values(self._src[j, ids[same]], block, same)
        return out

    def mark(self, hours: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The states of `hours` (a bool per hour) as they are now, for changed_since."""
        return hours, self._obs[hours].copy(), self._cap[hours].copy()

    def changed_since(self, mark: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
        """Per hour of a mark: whether a fold since then changed a station's state (its observation or
        its capture) or gave a state to a station added since."""
        hours, obs, cap = mark
        n = obs.shape[1]
        return ((self._obs[hours, :n] != obs).any(axis=1) | (self._cap[hours, :n] != cap).any(axis=1)
                | (self._src[hours, n:] >= 0).any(axis=1))

    def add_states(self, ids: np.ndarray, hour_pos: np.ndarray, obs: np.ndarray, capture_s: np.ndarray,
                   block: dict[str, np.ndarray]) -> None:
        """Set stored states, each the state of its own hour (a row of the dataset), before any
        capture is folded into that hour."""
        self.grow(int(ids.max()) + 1 if len(ids) else 0)
        base = self._pool(block, len(ids))
        self._obs[hour_pos, ids] = obs
        self._cap[hour_pos, ids] = capture_s
        self._src[hour_pos, ids] = base + np.arange(len(ids))
        np.maximum.at(self._latest, hour_pos, capture_s)

    @property
    def present(self) -> np.ndarray:
        return (self._src >= 0).T

    def column(self, name: str, rows: np.ndarray | None = None) -> np.ndarray:
        """A field of the chosen record of every cell (of `rows` only, when given); absent cells hold
        the pool's first value, to be masked by `present`."""
        src = self.src if rows is None else self.src[rows]
        if not self.blocks:
            return np.zeros(src.shape)
        pool = np.concatenate([b[name] for b in self.blocks])
        return pool[np.maximum(src, 0)]


def _widen(cells: np.ndarray, n_stations: int, fill: int) -> np.ndarray:
    """`cells` (hour, station) with stations up to n_stations, the new ones `fill` (np.pad took
    twice as long)."""
    out = np.full((cells.shape[0], n_stations), fill, dtype=cells.dtype)
    out[:, :cells.shape[1]] = cells
    return out


assert max(C.STATION_COUNT_MAX, C.STATION_CAPACITY_MAX) <= np.iinfo(np.uint8).max  # compact's dtype


def compact(cols: SnapshotColumns) -> None:
    """Validated counts fit a byte (STATION_COUNT_MAX, STATION_CAPACITY_MAX <= 255): 1 byte instead of
    8 for every record a cache of parsed snapshots holds (~35 snapshots x 100,000 stations in a chunk)."""
    for name in ("bikes", "capacity", "docks", "mechanical", "ebike"):
        setattr(cols, name, getattr(cols, name).astype(np.uint8))


def capture_block(cols, states: HourStates) -> dict[str, np.ndarray]:
    """The fields of one parsed snapshot (SnapshotColumns) as a block for HourStates."""
    n = len(cols)
    block = {f: getattr(cols, f) for f in FIELDS}
    block["source"] = np.full(n, states.source_number(snapshot_key(cols.ref.uri)), dtype=np.int32)
    return block


def fold_snapshot(states: HourStates, cols, only: np.ndarray | None = None) -> None:
    """One parsed snapshot (SnapshotColumns with station_ids) into `states`."""
    if len(cols):
        states.add_capture(cols.station_ids, cols.obs, int(cols.ref.capture_ts.timestamp()),
                           capture_block(cols, states), only)


class StationRegistry:
    """Station codes -> small ints for a whole run, so grids work on integer ids.

    The real feed lists its stations in a new order at every capture (2022-05-23: 1,411 of
    1,413 moved between two snapshots), so ids are looked up, one dict probe a record.
    """

    def __init__(self):
        self.index: dict[str, int] = {}
        self.codes: list[str] = []

    def assign(self, cols: SnapshotColumns) -> None:
        codes = cols.codes
        try:
            ids = self._ids(codes)
        except KeyError:
            self._add(codes)
            ids = self._ids(codes)
        cols.station_ids = ids
        # The ids name the codes from now on: a list of strings per snapshot was 8 bytes a record
        # (~27 MB of a 100,000-station chunk's cache).
        cols.codes = []

    def ids_of(self, codes: list[str]) -> np.ndarray:
        """The ids of `codes`, new codes assigned."""
        try:
            return self._ids(codes).astype(np.int64)
        except KeyError:
            self._add(codes)
            return self._ids(codes).astype(np.int64)

    def _add(self, codes: list[str]) -> None:
        """New codes get the next ids, in order of first appearance (one dict update for them all)."""
        new = list(dict.fromkeys(c for c in codes if c not in self.index))
        self.index.update(zip(new, range(len(self.codes), len(self.codes) + len(new))))
        self.codes.extend(new)

    def _ids(self, codes: list[str]) -> np.ndarray:
        """KeyError for a new code. One itemgetter call looks every code up in C: 83 -> 56 us for
        1,400 codes against np.fromiter(map(...))."""
        found = itemgetter(*codes)(self.index) if len(codes) > 1 else [self.index[c] for c in codes]
        return np.array(found, dtype=np.int32)


# ---------------------------------------------------------------- the dataset's rows
SCHEMA = pa.schema([
    ("station_code", pa.string()),
    ("hour_ts", pa.timestamp("us", tz="UTC")),
    ("bikes", pa.int16()),
    ("mechanical", pa.int16()),
    ("ebike", pa.int16()),
    ("docks", pa.int16()),
    ("capacity", pa.int16()),
    ("is_installed", pa.bool_()),
    ("is_renting", pa.bool_()),
    ("is_returning", pa.bool_()),
    ("lat", pa.float64()),
    ("lon", pa.float64()),
    ("observed_at", pa.timestamp("us", tz="UTC")),
    ("captured_at", pa.timestamp("us", tz="UTC")),
    ("source_object", pa.string()),
])
_COLUMN_OF = {"bikes": "bikes", "mechanical": "mechanical", "ebike": "ebike", "docks": "docks",
              "capacity": "capacity", "is_installed": "installed", "is_renting": "renting",
              "is_returning": "returning", "lat": "lat", "lon": "lon"}


# Columns go to and from Arrow through their buffers: pa.array() and to_numpy() import pandas on
# their first call, which would be most of the time an ingest of one capture takes.
_NUMPY = {pa.int16(): np.int16, pa.int32(): np.int32, pa.int64(): np.int64, pa.float64(): np.float64,
          pa.timestamp("us", tz="UTC"): np.int64}


def arrow(values: np.ndarray, type_: pa.DataType) -> pa.Array:
    """A NumPy column (no nulls) as an Arrow array of `type_` (timestamps: microseconds)."""
    if pa.types.is_boolean(type_):
        data = np.packbits(np.asarray(values, dtype=bool), bitorder="little")
    else:
        data = np.ascontiguousarray(values, dtype=_NUMPY[type_])
    return pa.Array.from_buffers(type_, len(values), [None, pa.py_buffer(data)])


def numpy(column) -> np.ndarray:
    """An Arrow column without nulls (bool or of _NUMPY's types) as NumPy."""
    a = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if pa.types.is_boolean(a.type):
        bits = np.frombuffer(a.buffers()[1], np.uint8)
        return np.unpackbits(bits, count=a.offset + len(a), bitorder="little")[a.offset:].astype(bool)
    dtype = np.dtype(_NUMPY[a.type])
    return np.frombuffer(a.buffers()[1], dtype, count=len(a), offset=a.offset * dtype.itemsize)


def strings(values: list[str]) -> pa.Array:
    joined = "".join(values)
    if joined.isascii():  # station codes: a character a byte, so one encode for them all
        data, lengths = joined.encode("ascii"), np.fromiter(map(len, values), dtype=np.int32, count=len(values))
    else:
        encoded = [v.encode() for v in values]
        data, lengths = b"".join(encoded), np.fromiter(map(len, encoded), dtype=np.int32, count=len(values))
    offsets = np.zeros(len(values) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    return pa.StringArray.from_buffers(len(values), pa.py_buffer(offsets), pa.py_buffer(data))


def _ts(seconds: np.ndarray) -> pa.Array:
    return arrow(seconds.astype(np.int64) * 1_000_000, pa.timestamp("us", tz="UTC"))


# SCHEMA as a date is built in memory: the string columns as their dictionaries, as Parquet stores
# them (decoding them as strings was most of reading a date; write_partition keeps no Arrow schema,
# so readers get plain strings)
DICTIONARY_COLUMNS = ("station_code", "source_object")
BUILD_SCHEMA = pa.schema([pa.field(f.name, pa.dictionary(pa.int32(), f.type)) if f.name in DICTIONARY_COLUMNS
                          else f for f in SCHEMA])


def hour_tables(states: HourStates, codes: list[str], positions: list[int]) -> Iterator[tuple[int, pa.Table]]:
    """For each hour position: (position, the dataset's rows of that hour, one per station with a
    state, sorted by station code, the order "bikes at station X" filters in). The fields these
    hours cite are pooled and the codes sorted once for all the hours."""
    rows = _Rows(states, codes, positions)
    for j in positions:
        yield j, rows.table(np.array([j]))


class _Rows:
    def __init__(self, states: HourStates, codes: list[str], positions: list[int]):
        self.states = states
        self.codes = np.array(codes, dtype=object)
        self.rank = np.empty(len(codes), dtype=np.int64)  # each station id's place in code order
        self.rank[np.argsort(self.codes, kind="stable")] = np.arange(len(codes))
        # only the blocks these hours cite are pooled: an ingest writing one hour of the twelve it
        # read copies that hour's records, not every hour's
        self.starts = np.array(states._starts, dtype=np.int64)
        src = states._src[positions]
        cited = np.zeros(len(self.starts), dtype=bool)
        cited[np.searchsorted(self.starts, src[src >= 0], side="right") - 1] = True
        blocks = np.flatnonzero(cited).tolist()
        sizes = np.diff(np.append(self.starts, states._pooled))[blocks]
        self.shift = np.zeros(len(self.starts), dtype=np.int64)  # a pool position -> its position here
        self.shift[blocks] = np.cumsum(sizes) - sizes - self.starts[blocks]
        self.pooled = {f: np.concatenate([states.blocks[b][f] for b in blocks]) if blocks else np.zeros(0, np.int32)
                       for f in (*_COLUMN_OF.values(), "source")}

    def table(self, cols: np.ndarray) -> pa.Table:
        states = self.states
        present = states.present[:, cols]  # (station, hour)
        rows_seen = np.flatnonzero(present.any(axis=1))
        rows_sorted = rows_seen[np.argsort(self.rank[rows_seen], kind="stable")]
        si, hk = np.nonzero(present[rows_sorted])  # row-major: station by station, hours in order
        r, hj = rows_sorted[si], cols[hk]
        src = states.src[r, hj]
        src = src + self.shift[np.searchsorted(self.starts, src, side="right") - 1]
        out: dict[str, pa.Array] = {
            "station_code": pa.DictionaryArray.from_arrays(arrow(si, pa.int32()),
                                                           strings(self.codes[rows_sorted].tolist())),
            "hour_ts": _ts(states.hours_s[hj]),
        }
        for col, f in _COLUMN_OF.items():
            out[col] = arrow(self.pooled[f][src], SCHEMA.field(col).type)
        out["observed_at"] = _ts(states.obs[r, hj])
        out["captured_at"] = _ts(states.cap[r, hj])
        out["source_object"] = pa.DictionaryArray.from_arrays(arrow(self.pooled["source"][src], pa.int32()),
                                                              strings(states.sources))
        return pa.Table.from_arrays([out[f.name] for f in BUILD_SCHEMA], schema=BUILD_SCHEMA)


def hour_start(d) -> datetime:
    return datetime(d.year, d.month, d.day, tzinfo=UTC)


def hours_of_date(d) -> list[datetime]:
    """The 24 whole UTC hours of a UTC date (a partition of the dataset)."""
    start = hour_start(d)
    return [start + timedelta(hours=k) for k in range(24)]
