"""The stored hourly states (docs/states-dataset.md): `<root>/states/date=D/part-0.parquet`.

One object per UTC date D, holding one row per station and whole UTC hour of D with a state
(datasets/states.py's rule), and, in its Parquet key-value metadata, its ledger: every capture
object folded into it, by its key under velib/snapshots/ (so a store copied elsewhere keeps its
states), with its version as listed (the ETag on S3, size and mtime locally).

Ingest lists the captures that may hold a state of each date and compares them with the date's
ledger: a date whose ledger matches is left alone (a replayed capture is a no-op); new captures
only are folded into the stored rows (parsed once, even when they reach two dates); a capture
whose version changed, or that is gone, has the date rebuilt from every capture it lists. Each
date is written whole (Storage.write_bytes: a temporary name, then a rename or one PUT), its
ledger inside it, so a killed ingest leaves every date either as it was or as it is now, and
the next ingest finishes the rest.

A reader trusts an hour of a date only when the date's ledger holds exactly the captures that
may hold a state of that hour, as the reader lists them (read_stored_states): an hour an ingest
has not finished, or one folded from captures after the reader's as_of, is read from the raw
captures instead.
"""

from __future__ import annotations

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
    DICTIONARY_COLUMNS,
    FIELDS,
    SCHEMA,
    TABLE_RULE,
    HourStates,
    StateRule,
    StationRegistry,
    arrow,
    compact,
    fold_snapshot,
    hour_start,
    hours_of_date,
    numpy,
    to_table,
)
from velibcast.errors import NotFound
from velibcast.timeutil import UTC

STATES_PREFIX = "states"
PART_NAME = "part-0.parquet"
LEDGER_KEY = b"velibcast.states.ledger"
_COLUMN_FIELD = {"is_installed": "installed", "is_renting": "renting", "is_returning": "returning"}


def partition_uri(root: str, d: date) -> str:
    return st.join(root, STATES_PREFIX, f"date={d.isoformat()}", PART_NAME)


def rule_dict(rule: StateRule) -> dict:
    assert rule.lookback is not None and rule.lag is not None
    return {"lookback_hours": rule.lookback.total_seconds() / 3600, "lag_hours": rule.lag.total_seconds() / 3600}


class Partition:
    """A stored date: the captures folded into it ({key: version}), the rule's hours, and its rows,
    decoded only when asked for (a date whose ledger matches is never decoded)."""

    def __init__(self, day: date, data: bytes):
        self.day = day
        # not read_table: it imports pyarrow.dataset and pandas
        self._file = pq.ParquetFile(io.BytesIO(data), read_dictionary=list(DICTIONARY_COLUMNS))
        ledger = json.loads((self._file.schema_arrow.metadata or {}).get(LEDGER_KEY, b"{}"))
        self.captures: dict[str, str] = ledger.get("captures", {})
        self.findings: dict[str, dict[str, int]] = ledger.get("findings", {})
        self.rule: dict = ledger.get("rule", {})
        self._table: pa.Table | None = None

    @property
    def table(self) -> pa.Table:
        if self._table is None:
            self._table = self._file.read().replace_schema_metadata(None).unify_dictionaries()
        return self._table

    def hours(self, hours_us: set[int]) -> pa.Table:
        """The rows of these hours (microseconds), reading only the row groups that may hold them."""
        meta, at = self._file.metadata, self._file.schema_arrow.get_field_index("hour_ts")
        groups = []
        for g in range(meta.num_row_groups):
            stats = meta.row_group(g).column(at).statistics
            if stats is None or not stats.has_min_max:
                groups.append(g)
            elif any(stats.min_raw <= h <= stats.max_raw for h in hours_us):  # raw: .min imports pandas
                groups.append(g)
        table = self._file.read_row_groups(groups).replace_schema_metadata(None).unify_dictionaries()
        return table.filter(pc.is_in(table.column("hour_ts"), arrow(np.array(sorted(hours_us)), pa.timestamp("us", tz="UTC"))))


def read_partition(storage: st.Storage, root: str, d: date) -> Partition | None:
    try:
        return Partition(d, storage.read_bytes(partition_uri(root, d)))
    except NotFound:
        return None


def write_partition(storage: st.Storage, root: str, d: date, table: pa.Table, captures: dict[str, str],
                    rule: StateRule = TABLE_RULE, findings: dict[str, dict[str, int]] | None = None) -> str:
    """A date's object: its rows (to_table) and its ledger, written whole. `findings`: what parsing
    each capture counted (datasets.report reasons), for runs that read the states instead of it."""
    ledger = {"captures": dict(sorted(captures.items())), "rule": rule_dict(rule),
              "findings": dict(sorted((findings or {}).items()))}
    buf = io.BytesIO()
    # no Arrow schema stored: readers get the string columns as strings, not as dictionaries
    with pq.ParquetWriter(buf, BUILD_SCHEMA, compression="zstd", store_schema=False) as writer:
        writer.write_table(table)
        writer.add_key_value_metadata({LEDGER_KEY: json.dumps(ledger).encode()})
    uri = partition_uri(root, d)
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


def seed(states: HourStates, registry: StationRegistry, table: pa.Table, hours_s0: int) -> None:
    """Stored rows into `states`, each as the state of its own hour."""
    if not table.num_rows:
        return
    codes = _dictionary(table.column("station_code"))
    ids = registry.ids_of(codes.dictionary.to_pylist())[numpy(codes.indices)]

    def seconds(name: str) -> np.ndarray:
        return numpy(table.column(name)) // 1_000_000

    hour_pos = (seconds("hour_ts") - hours_s0) // 3600
    block = {_COLUMN_FIELD.get(c, c): numpy(table.column(c)) for c in SCHEMA.names
             if _COLUMN_FIELD.get(c, c) in FIELDS}
    sources = _dictionary(table.column("source_object"))
    numbers = np.array([states.source_number(u) for u in sources.dictionary.to_pylist()], dtype=np.int32)
    block["source"] = numbers[numpy(sources.indices)]
    states.add_states(ids, hour_pos, seconds("observed_at"), seconds("captured_at"), block)


def _dictionary(column: pa.ChunkedArray) -> pa.DictionaryArray:
    """A string column (stored dictionary-encoded, unified across row groups) as one DictionaryArray."""
    if not pa.types.is_dictionary(column.type):
        column = pc.dictionary_encode(column)
    return column.combine_chunks()


@dataclass
class IngestResult:
    written: list[str] = field(default_factory=list)      # dates written, ISO
    rebuilt: list[str] = field(default_factory=list)      # of which rebuilt from every capture
    unchanged: list[str] = field(default_factory=list)
    captures_parsed: int = 0
    report: SkipReport = field(default_factory=SkipReport)

    def to_dict(self) -> dict:
        return {"written": self.written, "rebuilt": self.rebuilt, "unchanged": self.unchanged,
                "captures_parsed": self.captures_parsed, "report": self.report.to_dict()}


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
        mine = [r for r in refs if d_lo <= r.capture_ts <= d_hi]
        want = {snapshot_key(r.uri): r.version for r in mine}
        stored = read_partition(storage, root, d)
        if stored is not None and stored.captures == want and stored.rule == rule_dict(TABLE_RULE):
            result.unchanged.append(d.isoformat())
            continue
        if stored is None and not want:
            continue
        states = HourStates(hours_of_date(d), TABLE_RULE)
        additions = (stored is not None and stored.rule == rule_dict(TABLE_RULE)
                     and all(want.get(u) == v for u, v in stored.captures.items()))
        if additions:
            assert stored is not None
            seed(states, parsed.registry, stored.table, int(hour_start(d).timestamp()))
            mine = [r for r in mine if snapshot_key(r.uri) not in stored.captures]
        else:
            result.rebuilt.append(d.isoformat())
        for cols in parsed.get(mine):
            fold_snapshot(states, cols)
        findings = {k: v for k, v in (stored.findings if additions and stored is not None else {}).items()
                    if k in want}
        findings.update({k: v for k, v in parsed.findings.items() if k in want})
        write_partition(storage, root, d, to_table(states, parsed.registry.codes), want, findings=findings)
        result.written.append(d.isoformat())
    return result


# ---------------------------------------------------------------- reading for a run
class PartitionCache:
    """Stored dates as a run reads them, the last few kept: consecutive chunks share dates."""

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
    now settled from the store. An hour is settled when the stored rule is the run's and its
    date's ledger holds exactly the captures `refs` (what the run lists, at or before its
    as_of) that may hold a state of that hour, at the same versions. `findings` receives what
    parsing those captures counted (by capture key), for the reader's own report."""
    settled = np.zeros(len(states.hours), dtype=bool)
    rule = StateRule.for_staleness(max_staleness)
    if rule != TABLE_RULE:
        return settled
    listed = sorted(refs, key=lambda r: r.capture_ts)
    by_date: dict[date, list[int]] = {}
    for j, h in enumerate(states.hours):
        by_date.setdefault(h.astimezone(UTC).date(), []).append(j)
    for d, positions in by_date.items():
        stored = partitions.get(d)
        if stored is None or stored.rule != rule_dict(TABLE_RULE):
            continue
        ledger = [(capture_ts_from_key(u), u, v) for u, v in stored.captures.items()]
        keep = []
        for j in positions:
            lo, hi = rule.capture_span(states.hours[j], states.hours[j])
            need = {snapshot_key(r.uri): r.version for r in listed if lo <= r.capture_ts <= hi}
            have = {u: v for ts, u, v in ledger if ts is not None and lo <= ts <= hi}
            if need == have:
                keep.append(j)
                if findings is not None:  # what parsing the captures of a settled hour counted
                    findings.update({k: stored.findings[k] for k in have if k in stored.findings})
        if not keep:
            continue
        seed(states, registry, stored.hours(set((states.hours_s[keep] * 1_000_000).tolist())), int(states.hours_s[0]))
        settled[keep] = True
    return settled


def read_states(storage: st.Storage, root: str, snapshots_root: str, start: datetime, end: datetime,
                as_of: datetime | None = None, policy: ValidationPolicy | None = None,
                report: SkipReport | None = None) -> pa.Table:
    """The states of the whole UTC hours in [start, end), as the dataset's rows (BUILD_SCHEMA: the
    string columns as dictionaries), for history readers (profiles, training, backtests): hours the
    stored states settle for this reader (at as_of) come from them, the others are folded from the
    raw captures, a date at a time."""
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
        tables.append(to_table(states, parsed.registry.codes))
    read_raw = {snapshot_key(uri) for uri, _ in parsed.seen}
    for key, counts in sorted(findings.items()):
        if key not in read_raw:
            for reason, n in counts.items():
                report.add(reason, key, "counted when the hourly states were ingested", n=n)
    return pa.concat_tables(tables).unify_dictionaries() if tables else BUILD_SCHEMA.empty_table()
