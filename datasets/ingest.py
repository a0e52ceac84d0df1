"""The stored hourly states (docs/states-dataset.md): `<root>/states/date=D/part-HH.parquet`.

One object per UTC hour HH of date D (24 per date, written even when empty), holding one row per
station with a state at that hour (datasets/states.py's rule), sorted by station code, and a
token naming what its rows are folded from (hour_token: the hour, the rule, its captures at their
versions). Beside them, the date's ledger `_ledger.json` (a name no Parquet glob or Hive reader
takes): every capture object that may hold a state of the date, by its key under
velib/snapshots/ (so a store copied elsewhere keeps its states), with its version as listed (the
ETag on S3, size and mtime locally), what parsing each counted, the rule, and each hour's token.

Why an object per hour: a new capture changes few hours. The rule lets it reach [t - 12 h, t + 4 h],
but it changes an hour only through a record observed at or before that hour that is not its
station's state there already: a record repeating a state (a stalled station's, the same
observation time and values) leaves it as it is (datasets/states.py). So a capture at the end of
the feed changes the hours from its oldest new observation on, the last few hours, whether or not
stations stalled. Ingest reads and writes only those hours; the others keep their object, now for
more captures, and the one-capture ingest costs about a parse.

Ingest lists the captures that may hold a state of each date and compares them, hour by hour,
with the date's ledger: an hour whose captures match is left alone (a replayed capture is a
no-op); new captures only, each later than every capture the hour holds, are folded into the
stored rows of the hours they may change (parsed once, even when they reach two dates), and the
hour rewritten only if a row changed. Which of those hours are read: those at or after the oldest
observation of the new captures; for one new capture, only its records that do not repeat their
station's state at the last hour it reaches that holds captures count (each earlier hour it
reaches holds that hour's captures and earlier ones, so a record repeating the state there
repeats it there too). An hour one of whose captures changed version, or is gone, or that a
capture earlier than one it holds reaches (a late one: whether it repeats a state depends on the
captures after it), is rebuilt from every capture it lists.

Atomicity: each object is written whole (Storage.write_bytes: a temporary name, then a rename or
one PUT). A date's ledger is its commit: ingest first rewrites the ledger naming the hours it is
about to replace (`pending`), then writes those hours, then the ledger of the new state. A reader
takes an hour's rows only from the object whose token the ledger commits (Partition.hour), so an
ingest killed between hour writes leaves every date, as velibcast's readers see it, either as it
was (a replaced hour is then folded from the raw captures) or as it is now; the next ingest
checks the pending hours, keeps those already written as it would write them, and finishes the
rest. A reader of the Parquet alone (DuckDB, Athena) sees each hour old or new, never a part,
and never two objects for one hour; until that next ingest, a date may mix old and new hours.

A reader trusts an hour only when the date's ledger holds exactly the captures that may hold a
state of that hour, as the reader lists them, and the hour's object is the committed one
(read_stored_states): an hour an ingest has not finished, or one folded from captures after the
reader's as_of, is read from the raw captures instead.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from velibcast import constants as C
from velibcast import storage as st
from velibcast.datasets.report import SkipReport, ValidationPolicy
from velibcast.datasets.snapshots import (
    SnapshotColumns,
    SnapshotRef,
    capture_ts_from_key,
    fetch_many,
    list_snapshots,
    parse_snapshot_columns,
    snapshot_key,
)
from velibcast.datasets.states import (
    BUILD_SCHEMA,
    FIELDS,
    SAME_OBSERVATION,
    SCHEMA,
    TABLE_RULE,
    HourStates,
    StateRule,
    StationRegistry,
    capture_block,
    compact,
    fold_snapshot,
    hour_tables,
    hours_of_date,
    numpy,
)
from velibcast.errors import DataError, NotFound
from velibcast.timeutil import UTC

STATES_PREFIX = "states"
LEDGER_NAME = "_ledger.json"  # "_": pyarrow and Athena skip it; not ".parquet": no DuckDB or polars glob takes it
HOUR_KEY = b"velibcast.states.hour"  # an hour object's key-value metadata: its token
_PLAIN = ("station_code", "lat", "lon", "observed_at")
LEGACY_PART = "part-0.parquet"  # a date's one object, as velibcast stored the states before hour objects
_COLUMN_FIELD = {"is_installed": "installed", "is_renting": "renting", "is_returning": "returning"}


def date_prefix(root: str, d: date) -> str:
    return st.join(root, STATES_PREFIX, f"date={d.isoformat()}")


def hour_uri(root: str, d: date, k: int) -> str:
    """The object of hour k (0..23) of date d."""
    return st.join(date_prefix(root, d), f"part-{k:02d}.parquet")


def partition_uri(root: str, d: date) -> str:
    """A date's ledger, written last by each ingest of the date: the date exists once it does."""
    return st.join(date_prefix(root, d), LEDGER_NAME)


def rule_dict(rule: StateRule) -> dict:
    assert rule.lookback is not None and rule.lag is not None
    return {"lookback_hours": rule.lookback.total_seconds() / 3600, "lag_hours": rule.lag.total_seconds() / 3600,
            "same_observation": SAME_OBSERVATION}


def hour_token(hour: datetime, captures: dict[str, str]) -> str:
    """Names an hour object's rows by what they are folded from: the hour and its captures at their
    versions (the rows are a function of those, by the rule). Two writes with the same token hold
    the same rows, so an ingest finds an hour a killed ingest already wrote."""
    text = json.dumps([hour.isoformat(), rule_dict(TABLE_RULE), sorted(captures.items())])
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class Partition:
    """A stored date as its ledger commits it: the captures folded into it ({key: version}), what
    parsing them counted, the rule's hours, and each hour's token. An hour's rows are read only when
    asked for, and only when its object is the one the ledger committed (`hour`)."""

    def __init__(self, storage: st.Storage, root: str, day: date, ledger: dict):
        self.storage, self.root, self.day = storage, root, day
        self.captures: dict[str, str] = ledger.get("captures", {})
        self.findings: dict[str, dict[str, int]] = ledger.get("findings", {})
        self.rule: dict = ledger.get("rule", {})
        self.tokens: list[str | None] = ledger.get("hours") or [None] * 24
        self.pending: dict[str, str] = ledger.get("pending", {})  # hour (two digits) -> token being written

    def _hour_file(self, k: int) -> pq.ParquetFile | None:
        try:
            data = self.storage.read_bytes(hour_uri(self.root, self.day, k))
        except NotFound:
            return None
        # not read_table: it imports pyarrow.dataset and pandas
        return pq.ParquetFile(io.BytesIO(data), read_dictionary=["source_object"])  # station_code: StationIds

    def stored_token(self, k: int) -> str | None:
        """The token of hour k's object as stored, from its footer (its rows are not decoded)."""
        file = self._hour_file(k)
        return None if file is None else _token_of(file)

    def read_hour(self, k: int) -> tuple[str | None, pa.Table | None]:
        """Hour k's object as stored: its token and its rows (None, None when there is none)."""
        file = self._hour_file(k)
        if file is None:
            return None, None
        return _token_of(file), file.read().replace_schema_metadata(None).unify_dictionaries()

    def hour(self, k: int) -> pa.Table | None:
        """The committed rows of hour k; None when its object is not the one the ledger names (an
        ingest killed after writing it and before its ledger) or there is none."""
        token, table = self.read_hour(k)
        return table if token is not None and token == self.tokens[k] else None

    @property
    def table(self) -> pa.Table:
        """Every hour's committed rows (DataError when an hour is not the committed one)."""
        tables = []
        for k in range(24):
            t = self.hour(k)
            if t is None:
                raise DataError(hour_uri(self.root, self.day, k), "not the hour the date's ledger committed",
                                "run the ingest of this date again")
            tables.append(t)
        return pa.concat_tables(tables).unify_dictionaries()


def read_partition(storage: st.Storage, root: str, d: date) -> Partition | None:
    try:
        return Partition(storage, root, d, json.loads(storage.read_bytes(partition_uri(root, d))))
    except NotFound:
        return None


def _token_of(file: pq.ParquetFile) -> str | None:
    return json.loads((file.metadata.metadata or {}).get(HOUR_KEY, b"{}")).get("token")


def write_ledger(storage: st.Storage, root: str, d: date, captures: dict[str, str], tokens: list[str | None],
                 findings: dict[str, dict[str, int]], pending: dict[str, str] | None = None) -> None:
    ledger = {"rule": rule_dict(TABLE_RULE), "captures": dict(sorted(captures.items())), "hours": tokens,
              "findings": dict(sorted(findings.items())), "pending": pending or {}}
    storage.write_text(partition_uri(root, d), json.dumps(ledger), content_type="application/json")


def write_hour(storage: st.Storage, root: str, d: date, k: int, table: pa.Table, token: str) -> str:
    """Hour k's object: its rows (states.hour_tables) and its token, written whole."""
    buf = io.BytesIO()
    # no Arrow schema stored: readers get the string columns as strings, not as dictionaries
    # no dictionary for the columns of distinct or nearly distinct values within an hour (codes,
    # positions, observation times): it only costs time and bytes there
    with pq.ParquetWriter(buf, BUILD_SCHEMA, compression="zstd", store_schema=False,
                          use_dictionary=[c for c in BUILD_SCHEMA.names if c not in _PLAIN]) as writer:
        writer.write_table(table)
        writer.add_key_value_metadata({HOUR_KEY: json.dumps({"token": token}).encode()})
    uri = hour_uri(root, d, k)
    storage.write_bytes(uri, buf.getvalue(), content_type="application/vnd.apache.parquet")
    return uri


def dates_of(start: datetime, end: datetime) -> list[date]:
    """The UTC dates of the whole hours in [start, end)."""
    d, out = start.astimezone(UTC).date(), []
    last = (end.astimezone(UTC) - timedelta(microseconds=1)).date()
    while d <= last:
        out.append(d)
        d += timedelta(days=1)
    return out


def capture_span_of(d: date, rule: StateRule = TABLE_RULE) -> tuple[datetime, datetime]:
    hours = hours_of_date(d)
    return rule.capture_span(hours[0], hours[-1])


class StationIds:
    """Station codes of stored hours -> registry ids. An hour holds each station once, sorted by
    code, so a dictionary would not shorten its codes; consecutive hours mostly hold the same
    stations, so the ids of the last codes looked up are kept and reused when the next hour's are
    equal (one comparison of two Arrow arrays instead of a lookup a station)."""

    def __init__(self, registry: StationRegistry):
        self.registry = registry
        self._last: tuple[pa.Array, np.ndarray] | None = None

    def of(self, column: pa.ChunkedArray) -> np.ndarray:
        codes = column.combine_chunks()
        if pa.types.is_dictionary(codes.type):
            return self.registry.ids_of(codes.dictionary.to_pylist())[numpy(codes.indices)]
        if self._last is None or not self._last[0].equals(codes):
            self._last = codes, self.registry.ids_of(codes.to_pylist())
        return self._last[1]


def seed(states: HourStates, ids: StationIds, table: pa.Table) -> None:
    """Stored rows (of hours among `states.hours`) into `states`, each as the state of its own hour."""
    if not table.num_rows:
        return

    def seconds(name: str) -> np.ndarray:
        return numpy(table.column(name)) // 1_000_000

    hour_pos = np.searchsorted(states.hours_s, seconds("hour_ts"))
    block = {_COLUMN_FIELD.get(c, c): numpy(table.column(c)) for c in SCHEMA.names
             if _COLUMN_FIELD.get(c, c) in FIELDS}
    sources = _dictionary(table.column("source_object"))
    numbers = np.array([states.source_number(u) for u in sources.dictionary.to_pylist()], dtype=np.int32)
    block["source"] = numbers[numpy(sources.indices)]
    states.add_states(ids.of(table.column("station_code")), hour_pos, seconds("observed_at"),
                      seconds("captured_at"), block)


def repeats_state(registry: StationRegistry, hour: datetime, table: pa.Table, cols: SnapshotColumns) -> np.ndarray:
    """Which records of a parsed capture hold exactly their station's state in `table` (the stored
    rows of `hour`): its observation time and values."""
    assert cols.station_ids is not None  # assigned by the registry when parsed
    states = HourStates([hour], TABLE_RULE)
    seed(states, StationIds(registry), table)
    return states.repeats(0, cols.station_ids, cols.obs, capture_block(cols, states))


def _dictionary(column: pa.ChunkedArray) -> pa.DictionaryArray:
    """A string column (stored dictionary-encoded, unified across row groups) as one DictionaryArray."""
    if not pa.types.is_dictionary(column.type):
        column = pc.dictionary_encode(column)
    return column.combine_chunks()


@dataclass
class IngestResult:
    written: list[str] = field(default_factory=list)      # dates whose ledger was written, ISO
    rebuilt: list[str] = field(default_factory=list)      # of which some hours rebuilt from every capture
    unchanged: list[str] = field(default_factory=list)
    hours_written: list[str] = field(default_factory=list)  # hour objects written, "D THH"
    captures_parsed: int = 0
    report: SkipReport = field(default_factory=SkipReport)

    def to_dict(self) -> dict:
        return {"written": self.written, "rebuilt": self.rebuilt, "unchanged": self.unchanged,
                "hours_written": self.hours_written, "captures_parsed": self.captures_parsed,
                "report": self.report.to_dict()}


class _Parsed:
    """Parsed captures by (uri, version), each parsed once per ingest, dropped once behind."""

    def __init__(self, storage: st.Storage, policy: ValidationPolicy, result: IngestResult):
        self.storage, self.policy, self.result = storage, policy, result
        self.registry = StationRegistry()
        self.cache: dict[tuple[str, str], SnapshotColumns] = {}
        self.findings: dict[str, dict[str, int]] = {}  # key -> what its parse counted (rejections, flags)
        self.seen: set[tuple[str, str]] = set()  # every (uri, version) parsed

    def get(self, refs: list[SnapshotRef]) -> list[SnapshotColumns]:
        todo = [r for r in refs if (r.uri, r.version) not in self.cache]
        for ref, data, raw in fetch_many(self.storage, todo):
            found = SkipReport()
            try:
                cols = parse_snapshot_columns(data, ref, self.policy, found, self.registry.index, raw)
            finally:
                for reason, n in found.counts.items():
                    self.result.report.add(reason, (found.examples.get(reason) or [ref.uri])[0], n=n)
            if found.counts:
                self.findings[snapshot_key(ref.uri)] = dict(found.counts)
            self.registry.assign(cols)
            compact(cols)
            self.cache[(ref.uri, ref.version)] = cols
            self.seen.add((ref.uri, ref.version))
            self.result.captures_parsed += 1
        return [self.cache[(r.uri, r.version)] for r in refs]

    def drop_before(self, ts: datetime) -> None:
        for key in [k for k, c in self.cache.items() if c.ref.capture_ts < ts]:
            del self.cache[key]


def ingest(storage: st.Storage, snapshots_root: str, root: str, start: datetime, end: datetime,
           policy: ValidationPolicy | None = None, as_of: datetime | None = None) -> IngestResult:
    """Bring the stored states of the UTC dates of [start, end) up to the captures listed now
    (taken at or before as_of, when given). Dates are done in order; see the module docstring."""
    policy = policy or ValidationPolicy()
    result = IngestResult()
    days = dates_of(start, end)
    if not days:
        return result
    lo, _ = capture_span_of(days[0])
    _, hi = capture_span_of(days[-1])
    refs = list_snapshots(storage, snapshots_root, lo, hi, result.report, policy, as_of)
    parsed = _Parsed(storage, policy, result)
    for d in days:
        d_lo, d_hi = capture_span_of(d)
        parsed.drop_before(d_lo)
        _ingest_date(storage, root, d, [r for r in refs if d_lo <= r.capture_ts <= d_hi], parsed, result)
    return result


def _ingest_date(storage: st.Storage, root: str, d: date, mine: list[SnapshotRef], parsed: _Parsed,
                 result: IngestResult) -> None:
    """One date: which hours the captures listed now change, those hours' objects, then the ledger."""
    want = {snapshot_key(r.uri): r.version for r in mine}
    found = read_partition(storage, root, d)
    stored = found if found is not None and found.rule == rule_dict(TABLE_RULE) else None
    if stored is not None and stored.captures == want and not stored.pending:
        result.unchanged.append(d.isoformat())
        return
    if found is None and not want:
        return
    hours = hours_of_date(d)
    hours_s = np.array([int(h.timestamp()) for h in hours], dtype=np.int64)
    at = {snapshot_key(r.uri): r.capture_ts for r in mine}
    if stored is not None:
        at.update({k: ts for k in stored.captures if k not in at and (ts := capture_ts_from_key(k)) is not None})

    def of_hour(j: int, captures: dict[str, str]) -> dict[str, str]:
        lo, hi = TABLE_RULE.capture_span(hours[j], hours[j])
        return {k: v for k, v in captures.items() if k in at and lo <= at[k] <= hi}

    wanted = [of_hour(j, want) for j in range(24)]
    tokens = [hour_token(hours[j], wanted[j]) for j in range(24)]
    before: list[str | None] = list(stored.tokens) if stored is not None else [None] * 24
    committed = list(before)  # the tokens of the ledger this ingest writes last
    kept: list[int] = []  # hours a killed ingest wrote as this one would
    rebuild, add, late = np.zeros(24, dtype=bool), np.zeros(24, dtype=bool), np.zeros(24, dtype=bool)
    holds = np.zeros(24, dtype=bool)  # hours whose stored rows are folded from some capture
    at_min = datetime.min.replace(tzinfo=UTC)
    if stored is None:
        rebuild[:] = True
    for j in range(24 if stored is not None else 0):
        assert stored is not None
        on_disk = stored.stored_token(j) if f"{j:02d}" in stored.pending else stored.tokens[j]
        if on_disk != stored.tokens[j]:  # replaced by an ingest killed before its ledger
            if on_disk == tokens[j]:
                committed[j] = tokens[j]  # with what this one would write: kept
                kept.append(j)
            else:
                rebuild[j] = True
            continue
        have = of_hour(j, stored.captures)
        holds[j] = bool(have)
        if have == wanted[j]:
            continue
        if all(wanted[j].get(k) == v for k, v in have.items()):
            add[j] = True  # new captures only: folded into the stored rows
            # a capture earlier than one the hour holds: whether it repeats a state depends on the
            # captures around it, so the hour is rebuilt, if the capture reaches it
            late[j] = min(at[k] for k in wanted[j] if k not in have) < max((at[k] for k in have), default=at_min)
        else:
            rebuild[j] = True  # a capture corrected or gone: from every capture it lists
    new = {k for k in want if stored is None or k not in stored.captures}
    reach = {snapshot_key(r.uri): TABLE_RULE.hours_of(int(r.capture_ts.timestamp()), hours_s) for r in mine}
    columns = {snapshot_key(c.ref.uri): c for c in parsed.get(
        [r for r in mine if snapshot_key(r.uri) in new and (add | rebuild)[reach[snapshot_key(r.uri)]].any()])}
    # a capture changes an hour only through a record observed at or before it: an added capture
    # whose records are all observed later leaves that hour's rows as they are, unread
    reached = np.zeros(24, dtype=bool)
    seeds: dict[int, pa.Table] = {}
    for key, cols in columns.items():
        if not len(cols):
            continue
        span = reach[key]
        reached[span[hours_s[span] >= int(cols.obs.min())]] = True
        last = span[add[span] & ~late[span] & reached[span] & holds[span]]
        if stored is not None and len(columns) == 1 and len(last) and (table := stored.hour(int(last[-1]))) is not None:
            # the one new capture, later than every capture of the hours it reaches: a record that
            # repeats its station's state at the last of them holding captures repeats it at each
            # earlier one (whose captures include that hour's), so only the other records say
            # which of those hours to read
            ref = int(last[-1])
            seeds[ref] = table
            changing = ~repeats_state(parsed.registry, hours[ref], table, cols)
            since = int(cols.obs[changing].min()) if changing.any() else int(hours_s[ref])
            reached[span[(hours_s[span] < hours_s[ref]) & (hours_s[span] < since)]] = False
    rebuild |= add & reached & late
    for j in np.flatnonzero(add & reached & ~late).tolist():
        assert stored is not None
        if j in seeds:
            continue
        table = stored.hour(j)
        if table is None:  # the committed object is gone: the hour from every capture it lists
            rebuild[j] = True
        else:
            seeds[j] = table
    columns.update({snapshot_key(c.ref.uri): c for c in parsed.get(
        [r for r in mine if snapshot_key(r.uri) not in columns and rebuild[reach[snapshot_key(r.uri)]].any()])})
    # only the hours to fold: one hour of 100,000 stations for a capture at the end of the feed
    seeded = np.zeros(24, dtype=bool)
    seeded[list(seeds)] = True
    work = np.flatnonzero(rebuild | seeded)
    states = HourStates([hours[j] for j in work], TABLE_RULE)
    states.grow(len(parsed.registry.codes))
    ids = StationIds(parsed.registry)
    for table in seeds.values():
        seed(states, ids, table)
    del seeds
    rebuild_w, seeded_w = rebuild[work], seeded[work]
    before_fold = states.mark(seeded_w)
    for r in mine:
        key = snapshot_key(r.uri)
        if key in columns:
            fold_snapshot(states, columns[key], only=rebuild_w | seeded_w if key in new else rebuild_w)
    changed_w = rebuild_w.copy()
    if seeded_w.any():  # rows a fold changed, or stations it added
        changed_w[seeded_w] = states.changed_since(before_fold)
    write = np.flatnonzero(changed_w).tolist()  # positions in `work`
    findings = {k: v for k, v in (stored.findings if stored is not None else {}).items() if k in want}
    findings.update({k: v for k, v in parsed.findings.items() if k in want})
    if write:  # the hours about to be replaced (and those kept), named first: a killed ingest's
        # successor checks them; the ledger still commits what it did before
        write_ledger(storage, root, d, stored.captures if stored is not None else {}, before,
                     stored.findings if stored is not None else {},
                     pending={f"{j:02d}": tokens[j] for j in sorted(kept + [int(work[p]) for p in write])})
        for p, table in hour_tables(states, parsed.registry.codes, write):
            j = int(work[p])
            write_hour(storage, root, d, j, table, tokens[j])
            committed[j] = tokens[j]
            result.hours_written.append(f"{d.isoformat()}T{j:02d}")
    # an hour whose rows no capture changed keeps its committed object, now for more captures
    write_ledger(storage, root, d, want, committed, findings)
    if found is None:  # the date's object of the layout this replaced would hold its rows twice
        storage.delete(st.join(date_prefix(root, d), LEGACY_PART))
    if rebuild.any():
        result.rebuilt.append(d.isoformat())
    result.written.append(d.isoformat())


# ---------------------------------------------------------------- reading for a run
class PartitionCache:
    """Stored dates (their ledgers) as a run reads them, the last few kept: consecutive chunks share dates."""

    def __init__(self, storage: st.Storage, root: str, keep: int = 3):
        self.storage, self.root, self.keep = storage, root, keep
        self._held: dict[date, Partition | None] = {}

    def get(self, d: date) -> Partition | None:
        if d not in self._held:
            if len(self._held) >= self.keep:
                del self._held[min(self._held)]
            self._held[d] = read_partition(self.storage, self.root, d)
        return self._held[d]


def read_stored_states(partitions: PartitionCache, states: HourStates, registry: StationRegistry,
                       refs: Iterable[SnapshotRef], max_staleness: timedelta,
                       findings: dict[str, dict[str, int]] | None = None) -> np.ndarray:
    """Fold the stored states of `states.hours` into `states`; return a bool per hour: the hours
    now settled from the store. An hour is settled when the stored rule is the run's, its date's
    ledger holds exactly the captures `refs` (what the run lists, at or before its as_of) that may
    hold a state of that hour, at the same versions, and its object is the one that ledger
    committed. `findings` receives what parsing those captures counted (by capture key), for the
    reader's own report."""
    settled = np.zeros(len(states.hours), dtype=bool)
    rule = StateRule.for_staleness(max_staleness)
    if rule != TABLE_RULE:
        return settled
    listed = sorted(refs, key=lambda r: r.capture_ts)
    ids = StationIds(registry)
    by_date: dict[date, list[int]] = {}
    for j, h in enumerate(states.hours):
        by_date.setdefault(h.astimezone(UTC).date(), []).append(j)
    for d, positions in by_date.items():
        stored = partitions.get(d)
        if stored is None or stored.rule != rule_dict(TABLE_RULE):
            continue
        ledger = [(capture_ts_from_key(u), u, v) for u, v in stored.captures.items()]
        for j in positions:
            lo, hi = rule.capture_span(states.hours[j], states.hours[j])
            need = {snapshot_key(r.uri): r.version for r in listed if lo <= r.capture_ts <= hi}
            have = {u: v for ts, u, v in ledger if ts is not None and lo <= ts <= hi}
            if need != have:
                continue
            table = stored.hour(states.hours[j].astimezone(UTC).hour)
            if table is None:  # not the committed object: an ingest has not finished this hour
                continue
            seed(states, ids, table)
            settled[j] = True
            if findings is not None:  # what parsing the captures of a settled hour counted
                findings.update({k: stored.findings[k] for k in have if k in stored.findings})
    return settled


def read_states(storage: st.Storage, root: str, snapshots_root: str, start: datetime, end: datetime,
                as_of: datetime | None = None, policy: ValidationPolicy | None = None,
                report: SkipReport | None = None) -> pa.Table:
    """The states of the whole UTC hours in [start, end), as the dataset's rows (BUILD_SCHEMA: the
    string columns as dictionaries), hour by hour as stored, for history readers (profiles,
    training, backtests): hours the stored states settle for this reader (at as_of) come from them,
    the others are folded from the raw captures, a date at a time."""
    policy = policy or ValidationPolicy()
    report = report if report is not None else SkipReport()
    partitions = PartitionCache(storage, root)
    parsed = _Parsed(storage, policy, IngestResult(report=report))
    tables: list[pa.Table] = []
    findings: dict[str, dict[str, int]] = {}
    for d in dates_of(start, end):
        hours = [h for h in hours_of_date(d) if start <= h < end]
        if not hours:
            continue
        states = HourStates(hours, TABLE_RULE)
        lo, hi = TABLE_RULE.capture_span(hours[0], hours[-1])
        refs = list_snapshots(storage, snapshots_root, lo, hi, report, policy, as_of)
        max_staleness = timedelta(hours=C.MAX_STALENESS_HOURS)
        open_hours = ~read_stored_states(partitions, states, parsed.registry, refs, max_staleness, findings)
        if open_hours.any():
            parsed.drop_before(lo)
            wanted = [r for r in refs
                      if open_hours[TABLE_RULE.hours_of(int(r.capture_ts.timestamp()), states.hours_s)].any()]
            for cols in parsed.get(wanted):
                fold_snapshot(states, cols, only=open_hours)
        tables.extend(t for _, t in hour_tables(states, parsed.registry.codes, list(range(len(hours)))))
    read_raw = {snapshot_key(uri) for uri, _ in parsed.seen}
    for key, counts in sorted(findings.items()):
        if key not in read_raw:
            for reason, n in counts.items():
                report.add(reason, key, "counted when the hourly states were ingested", n=n)
    return pa.concat_tables(tables).unify_dictionaries() if tables else BUILD_SCHEMA.empty_table()
