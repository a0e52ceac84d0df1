"""The snapshot store: `<root>/velib/snapshots/...`, one gzipped JSON Lines object per capture.

Each line is one Paris OpenData v2.1 record plus `capture_ts_utc`. Two key layouts are read:
the seed's flat `<YYYY-MM-DDTHH-MM-SSZ>.jsonl.gz`, found in existing buckets, and the
importer's `date=YYYY-MM-DD/<same name>` (the capture's UTC date), so a listing touches only
the days it needs. The capture time in the key is the authority; nothing is listed by
LastModified. Keys are matched whole: anything else under a listed prefix is counted.
"""

from __future__ import annotations

import gzip
import re
import time
import zlib
from collections.abc import Container, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Annotated, Literal, NamedTuple, cast

import msgspec
import numpy as np

from velibcast import constants as C
from velibcast import storage as st
from velibcast.datasets.jsonio import DECODE_ERRORS, dumps_bytes, loads
from velibcast.datasets.report import SkipReport, ValidationPolicy
from velibcast.errors import ConfigError, DataError, TransientError
from velibcast.retry import Backoff
from velibcast.timeutil import UTC, iso_second, key_time, parse_key_time

SUFFIX = ".jsonl.gz"
_PARTITION_RE = re.compile(r"date=([0-9]{4}-[0-9]{2}-[0-9]{2})")
_CODE_RE = re.compile(C.STATION_CODE_PATTERN)
_KEY_RULE = "<YYYY-MM-DDTHH-MM-SSZ>.jsonl.gz or date=<its UTC date>/<YYYY-MM-DDTHH-MM-SSZ>.jsonl.gz"
_OUI_NON = {"OUI": True, "NON": False}


@dataclass(frozen=True)
class SnapshotRef:
    uri: str
    capture_ts: datetime
    version: str = ""  # the object's version as listed (storage.ObjectInfo): what reuse of windows is keyed on


@dataclass(slots=True)
class StationRecord:
    station_code: str
    obs_ts: datetime
    capture_ts: datetime
    capacity: int
    bikes: int
    docks: int
    mechanical: int
    ebike: int
    is_installed: bool
    is_renting: bool
    is_returning: bool
    lat: float
    lon: float
    name: str


# ---------------------------------------------------------------- keys and listing
def snapshots_prefix(root: str) -> str:
    return st.join(root, C.SNAPSHOT_PREFIX)


def snapshot_key(uri: str) -> str:
    """A snapshot object's key under velib/snapshots/ (`date=D/<time>.jsonl.gz`, or the flat name):
    the same for a store copied elsewhere."""
    return uri.rsplit(C.SNAPSHOT_PREFIX + "/", 1)[-1]


def snapshot_uri(root: str, capture_ts: datetime, layout: str = "partitioned") -> str:
    ts = capture_ts.astimezone(UTC)
    name = key_time(ts) + SUFFIX
    if layout == "flat":
        return st.join(snapshots_prefix(root), name)
    if layout == "partitioned":
        return st.join(snapshots_prefix(root), ts.strftime(C.SNAPSHOT_PARTITION_FORMAT), name)
    raise ConfigError(f"snapshot layout {layout!r}: use 'flat' or 'partitioned'")


def capture_ts_from_key(uri: str) -> datetime | None:
    """The capture time of a snapshot object's name (the last path segment), else None."""
    name = uri.rsplit("/", 1)[-1]
    if not name.endswith(SUFFIX):
        return None
    try:  # parse_key_time's pattern is the name's: digits fixed, [0-9] not \d (other scripts' digits)
        return parse_key_time(name[:-len(SUFFIX)])
    except ValueError:  # not shaped like a time, or shaped like one but not one: 2022-05-26T25-61-00Z
        return None


def _partition_date(segment: str) -> date | None:
    m = _PARTITION_RE.fullmatch(segment)
    if not m:
        return None
    try:
        return date.fromisoformat(m.group(1))
    except ValueError:
        return None


def key_problem(rel: str) -> tuple[datetime | None, str | None, str]:
    """(capture time, reason, detail) of a key relative to velib/snapshots/; reason None = a snapshot."""
    parts = rel.split("/")
    ts = capture_ts_from_key(parts[-1])
    if len(parts) == 2 and ts is not None:
        folder = _partition_date(parts[0])
        if folder is None:
            return ts, "bad_key", f"folder {parts[0]!r} is not date=YYYY-MM-DD; keys must be {_KEY_RULE}"
        if folder != ts.date():
            return ts, "misfiled_key", (f"capture {iso_second(ts)} filed under {parts[0]}; "
                                        f"move it to {ts.strftime(C.SNAPSHOT_PARTITION_FORMAT)}/")
        return ts, None, ""
    if len(parts) == 1 and ts is not None:
        return ts, None, ""
    return None, "bad_key", f"not a snapshot key; keys must be {_KEY_RULE}"


def _as_listed(uri: str) -> str:
    """`uri` spelt as Storage.list spells what it finds (a local path loses `./`)."""
    if st.is_s3(uri):
        return uri
    return ("file://" if uri.startswith("file://") else "") + str(st.local_path(uri))


def list_snapshots(
    storage: st.Storage, root: str, start: datetime, end: datetime, report: SkipReport | None = None,
    policy: ValidationPolicy | None = None, as_of: datetime | None = None,
) -> list[SnapshotRef]:
    """Snapshots captured in [start, end], sorted by capture time, from both layouts.

    With as_of, nothing captured after it is listed, so nothing after it can be read: a run
    "as of" a time sees the store as it was then, whatever was captured since.

    Only the UTC days of the range are listed (one flat and one partition prefix per day,
    plus the partitions of the day before and after, where a capture filed under its
    Europe/Paris date would sit), each listing paginated. A capture present in both layouts
    is read once. A key that is not exactly a snapshot key, or a capture of the range filed
    under another date's folder, is rejected as an object (counted, or raised under
    on_bad_object=fail) and not read.
    """
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    if as_of is not None:
        end = min(end, as_of.astimezone(UTC))
    policy = policy or ValidationPolicy()
    report = report if report is not None else SkipReport()
    base = snapshots_prefix(root)
    found: dict[datetime, SnapshotRef] = {}
    prefixes = [st.join(base, d.strftime(C.SNAPSHOT_PARTITION_FORMAT)) + "/"
                for d in days_between(start - timedelta(days=1), end + timedelta(days=1))]
    prefixes += [st.join(base, d.isoformat() + "T") for d in days_between(start, end)]
    listed_base = _as_listed(base) + "/"
    for prefix in prefixes:
        for info in storage.list(prefix):
            rel = info.uri[len(listed_base):] if info.uri.startswith(listed_base) else info.uri
            ts, reason, detail = key_problem(rel)
            in_range = ts is not None and start <= ts <= end
            if reason == "bad_key" or (reason and in_range):
                report.reject(policy, reason, info.uri, detail)
            if reason or not in_range or ts is None:  # in_range implies ts; said again for the type checker
                continue
            if ts in found:
                report.add("duplicate_snapshot", info.uri, f"same capture as {found[ts].uri}")
                continue
            found[ts] = SnapshotRef(info.uri, ts, info.version)
    return [found[ts] for ts in sorted(found)]


def days_between(start: datetime, end: datetime) -> list[date]:
    d, out = start.date(), []
    while d <= end.date():
        out.append(d)
        d += timedelta(days=1)
    return out


# ---------------------------------------------------------------- fetching
def fetch_bytes(storage: st.Storage, uri: str, attempts: int = C.FETCH_ATTEMPTS) -> bytes:
    """GET with retries on TransientError (botocore has retried already; this covers outages)."""
    pauses = Backoff(C.FETCH_BACKOFF_S, attempts).pauses()
    while True:
        try:
            return storage.read_bytes(uri)
        except TransientError:
            pause = next(pauses, None)
            if pause is None:
                raise
            time.sleep(pause)


class Fetched(NamedTuple):
    ref: SnapshotRef
    data: bytes           # the object as stored
    raw: bytes | None     # gunzipped in the fetch thread when small enough (see fetch_many), else None


def fetch_many(
    storage: st.Storage, refs: Iterable[SnapshotRef], concurrency: int = C.FETCH_CONCURRENCY,
    gunzip_below: int = 0,
) -> Iterator[Fetched]:
    """Yield the objects in the order given, with at most `concurrency` GETs in flight.

    Bounded look-ahead keeps memory at `concurrency` objects, however long the range. Objects
    of at most `gunzip_below` bytes are also gunzipped in the fetch threads (zlib releases the
    GIL, so it overlaps the parsing of the previous object); a larger object would hold its
    decompressed bytes ahead, ~9x its size, `concurrency` times over.
    """
    refs = iter(refs)
    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        pending = []
        for ref in refs:
            pending.append(pool.submit(_fetch, storage, ref, gunzip_below))
            if len(pending) >= concurrency:
                yield pending.pop(0).result()
        for fut in pending:
            yield fut.result()


def _fetch(storage: st.Storage, ref: SnapshotRef, gunzip_below: int) -> Fetched:
    data = fetch_bytes(storage, ref.uri)
    raw = None
    if 0 < len(data) <= gunzip_below:
        try:
            raw = gzip.decompress(data)
        except (OSError, EOFError, zlib.error):
            pass  # gunzipped again on the reading thread, which reports it in order (decompress)
    return Fetched(ref, data, raw)


# ---------------------------------------------------------------- parsing and validation
class _Bad(Exception):
    def __init__(self, reason: str, detail: str):
        self.reason, self.detail = reason, detail


def decompress(data: bytes, where: str, policy: ValidationPolicy, report: SkipReport) -> bytes | None:
    if not data:
        report.reject(policy, "empty_object", where, "object has 0 bytes")
        return None
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as e:
        report.reject(policy, "corrupt_gzip", where, f"cannot gunzip ({type(e).__name__}: {e})")
        return None


def parse_snapshot(
    data: bytes, ref: SnapshotRef, policy: ValidationPolicy, report: SkipReport
) -> list[StationRecord]:
    """Validate each line; a rejected line is counted (or raises) and never coerced."""
    raw = decompress(data, ref.uri, policy, report)
    if raw is None:
        return []
    if not raw.strip():
        report.reject(policy, "empty_object", ref.uri, "object holds no line")
        return []
    out: list[StationRecord] = []
    seen: set[str] = set()
    capture = ref.capture_ts
    for lineno, line in enumerate(raw.split(b"\n"), 1):
        if not line.strip():
            continue
        where = f"{ref.uri} line {lineno}"
        try:
            try:
                d = loads(line)
            except DECODE_ERRORS as e:
                raise _Bad("bad_json", f"not JSON ({e})") from None
            if type(d) is not dict:
                raise _Bad("bad_json", "line is not a JSON object")
            rec = record_from_v21(d, capture)
            if rec.station_code in seen:
                raise _Bad("duplicate_station", f"station {rec.station_code} already read from this snapshot")
            seen.add(rec.station_code)
            if rec.bikes + rec.docks > rec.capacity:
                report.add("over_capacity", where,
                           f"station {rec.station_code}: bikes {rec.bikes} + docks {rec.docks} > capacity {rec.capacity}")
            out.append(rec)
        except _Bad as b:
            report.reject(policy, b.reason, where, b.detail)
    return out


_INT_FIELDS = ("capacity", "numbikesavailable", "numdocksavailable", "mechanical", "ebike")


_INT_MAX = {"capacity": C.STATION_CAPACITY_MAX}  # the counts: STATION_COUNT_MAX
_LAT, _LON = C.SERVICE_AREA_LAT, C.SERVICE_AREA_LON


def record_from_v21(d: dict, capture: datetime) -> StationRecord:
    """One v2.1-shaped dict to a StationRecord, or _Bad naming the field.

    The bounds are those the model server enforces (velibcast.constants, "what a valid
    station record is"), so an accepted record never makes the server refuse a shard.
    """
    code = d.get("stationcode")
    if type(code) is not str or not code:
        raise _Bad("bad_type", f"stationcode {code!r} is not a non-empty string")
    if not _CODE_RE.fullmatch(code):
        raise _Bad("bad_station_code", f"stationcode {code[:40]!r} is not {C.STATION_CODE_PATTERN} "
                                       "(it would break CSV rows, record ids or keys)")
    vals = []
    for f in _INT_FIELDS:
        v = d.get(f)
        if type(v) is not int:
            raise _Bad("bad_type", f"station {code}: {f}={v!r} is not an integer")
        if v < 0:
            raise _Bad("negative_count", f"station {code}: {f}={v} is negative")
        hi = _INT_MAX.get(f, C.STATION_COUNT_MAX)
        if v > hi:
            raise _Bad("implausible_count", f"station {code}: {f}={v} is above {hi}")
        vals.append(v)
    flags = []
    for f in ("is_installed", "is_renting", "is_returning"):
        raw = d.get(f)
        v = _OUI_NON.get(raw) if type(raw) is str else None
        if v is None:
            raise _Bad("bad_type", f"station {code}: {f}={d.get(f)!r} is not \"OUI\" or \"NON\"")
        flags.append(v)
    geo = d.get("coordonnees_geo")
    lat = geo.get("lat") if type(geo) is dict else None
    lon = geo.get("lon") if type(geo) is dict else None
    if type(lat) not in (float, int) or type(lon) not in (float, int):
        raise _Bad("missing_coords", f"station {code}: coordonnees_geo={geo!r} lacks numeric lat/lon")
    lat, lon = cast(float, lat), cast(float, lon)  # checked just above (type(), so bool is refused)
    # Compared before float(): an int lat can be too large for a float. NaN fails too.
    if not (_LAT[0] <= lat <= _LAT[1] and _LON[0] <= lon <= _LON[1]):
        raise _Bad("out_of_area", f"station {code}: lat {lat!r}, lon {lon!r} is outside the service area "
                                  f"lat {_LAT[0]}..{_LAT[1]}, lon {_LON[0]}..{_LON[1]}")
    due = d.get("duedate")
    obs: datetime | None
    if due is None:
        obs = capture
    else:
        try:
            obs = datetime.fromisoformat(due) if type(due) is str else None
        except ValueError:
            obs = None
        if obs is None or obs.tzinfo is None:
            raise _Bad("bad_duedate", f"station {code}: duedate={due!r} is not ISO-8601 with an offset")
        try:
            obs = obs.astimezone(UTC)
        except OverflowError:  # year 1 with a positive offset, 9999 with a negative one
            raise _Bad("bad_duedate", f"station {code}: duedate={due!r} is out of range") from None
        ahead = (obs - capture).total_seconds()
        if ahead > C.FUTURE_DUEDATE_TOLERANCE_S:
            raise _Bad("future_duedate", f"station {code}: duedate {due} is {ahead:.0f} s after the capture "
                                         f"{iso_second(capture)} (tolerance {C.FUTURE_DUEDATE_TOLERANCE_S} s)")
    name = d.get("name")
    return StationRecord(
        code, obs, capture, vals[0], vals[1], vals[2], vals[3], vals[4],
        flags[0], flags[1], flags[2], float(lat), float(lon), name if type(name) is str else "",
    )


# ---------------------------------------------------------------- columnar fast path
@dataclass
class SnapshotColumns:
    """The fields windows need, as arrays: what a run keeps in memory per snapshot."""

    ref: SnapshotRef
    codes: list[str]
    obs: np.ndarray        # int64 epoch seconds (UTC)
    bikes: np.ndarray      # int64
    capacity: np.ndarray   # int64
    installed: np.ndarray  # bool
    renting: np.ndarray    # bool
    lat: np.ndarray
    lon: np.ndarray
    docks: np.ndarray      # int64; these four are kept for the hourly states (datasets/states.py)
    mechanical: np.ndarray
    ebike: np.ndarray
    returning: np.ndarray  # bool
    station_ids: np.ndarray | None = None  # set by the windows' snapshot source (a run-wide station registry)

    def __len__(self) -> int:
        return len(self.obs)

    @classmethod
    def from_records(cls, ref: SnapshotRef, recs: list[StationRecord]) -> SnapshotColumns:
        return cls(
            ref, [r.station_code for r in recs],
            np.array([int(r.obs_ts.timestamp()) for r in recs], dtype=np.int64),
            np.array([r.bikes for r in recs], dtype=np.int64),
            np.array([r.capacity for r in recs], dtype=np.int64),
            np.array([r.is_installed for r in recs], dtype=bool),
            np.array([r.is_renting for r in recs], dtype=bool),
            np.array([r.lat for r in recs], dtype=np.float64),
            np.array([r.lon for r in recs], dtype=np.float64),
            np.array([r.docks for r in recs], dtype=np.int64),
            np.array([r.mechanical for r in recs], dtype=np.int64),
            np.array([r.ebike for r in recs], dtype=np.int64),
            np.array([r.is_returning for r in recs], dtype=bool),
        )


def parse_snapshot_columns(
    data: bytes, ref: SnapshotRef, policy: ValidationPolicy, report: SkipReport,
    known_codes: Container[str] = (), raw: bytes | None = None,
) -> SnapshotColumns:
    """Same result, counts and messages as parse_snapshot, checked a column at a time.

    The column checks only decide whether every record is clean; if any is not (or the
    object has blank lines, which would shift line numbers), the snapshot goes through
    parse_snapshot, so rejections are always counted and worded by one piece of code.
    `known_codes`: codes already checked in this run (the run's station registry); only the
    others are matched against STATION_CODE_PATTERN. `raw`: the object already gunzipped.
    """
    # The garbage collector's pace is the entry point's choice (velibcast/process_settings.py).
    try:
        return _parse_columns(data, ref, policy, report, known_codes, raw)
    except (DataError, TransientError):
        raise
    except Exception as e:  # a parser bug must still name the object, never escape as a bare library error
        raise DataError(ref.uri, f"cannot be parsed ({type(e).__name__}: {e})",
                        "report this object to the velibcast maintainers; move it aside to run without it") from e


def _parse_columns(data: bytes, ref: SnapshotRef, policy: ValidationPolicy, report: SkipReport,
                   known_codes: Container[str] = (), raw: bytes | None = None) -> SnapshotColumns:
    raw = raw if raw is not None else decompress(data, ref.uri, policy, report)
    if raw is None:
        return SnapshotColumns.from_records(ref, [])
    cols = _clean_typed(raw, ref, known_codes) if len(raw) > raw.endswith(b"\n") else None
    if cols is None:
        return SnapshotColumns.from_records(ref, parse_snapshot(data, ref, policy, report))
    codes, obs, bikes, capacity, installed, docks, renting, lat, lon, mechanical, ebike, returning = cols
    for i in np.flatnonzero(bikes + docks > capacity).tolist():
        report.add("over_capacity", f"{ref.uri} line {i + 1}",
                   f"station {codes[i]}: bikes {bikes[i]} + docks {docks[i]} > capacity {capacity[i]}")
    return SnapshotColumns(ref, codes, obs, bikes, capacity, installed, renting, lat, lon, docks, mechanical, ebike,
                           returning)


_Count = Annotated[int, msgspec.Meta(ge=0, le=C.STATION_COUNT_MAX)]
_Flag = Literal["OUI", "NON"]
_Scalar = str | int | float | bool | None


class _Geo(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    lat: Annotated[float, msgspec.Meta(ge=_LAT[0], le=_LAT[1])]  # an int is read as a float, as float() does
    lon: Annotated[float, msgspec.Meta(ge=_LON[0], le=_LON[1])]


class _Line(msgspec.Struct, forbid_unknown_fields=True, gc=False, kw_only=True):
    """One line exactly as record_from_v21 accepts it, checked by msgspec's decoder in C.

    Every field of the feed is declared: the other v2.1 fields are decoded rather than skipped,
    because msgspec skips an unknown field without two checks orjson makes (a number such as
    1e999, invalid UTF-8), and the record path reads lines with orjson. They are scalars in the
    feed; a container there could be nested deeper than orjson's limit (1,024), which msgspec
    would read. A line with another field or shape takes the record path, which reads it all the
    same (tests/datasets/test_ds_parse_parity.py holds the two paths to one result).
    Fields are declared in the order of the v2.1 API's records (kw_only lets defaults sit
    between): msgspec tries the next declared field first, 1.46 -> 1.40 ms a 1,400-line snapshot.
    """

    stationcode: str
    name: _Scalar = None
    is_installed: _Flag
    capacity: Annotated[int, msgspec.Meta(ge=0, le=C.STATION_CAPACITY_MAX)]
    numdocksavailable: _Count
    numbikesavailable: _Count
    mechanical: _Count
    ebike: _Count
    is_renting: _Flag
    is_returning: _Flag
    duedate: str | None = None  # missing or null: the capture time, as record_from_v21
    coordonnees_geo: _Geo
    nom_arrondissement_communes: _Scalar = None
    code_insee_commune: _Scalar = None
    station_opening_hours: _Scalar = None
    capture_ts_utc: _Scalar = None  # appended by the capture


_decode_lines = msgspec.json.Decoder(_Line).decode_lines
_NEWLINE, _OPEN, _CLOSE = ord("\n"), ord("{"), ord("}")


def _columns(rows: list[_Line]) -> tuple[list, ...]:
    """codes, bikes, capacity, installed, docks, renting, lat, lon, duedates, mechanical, ebike, returning
    of decoded lines.

    One comprehension a field: 0.22 ms for 1,400 lines, against 0.42 ms for zip(*attrgetter()).
    """
    geo = [r.coordonnees_geo for r in rows]
    return ([r.stationcode for r in rows], [r.numbikesavailable for r in rows], [r.capacity for r in rows],
            [r.is_installed for r in rows], [r.numdocksavailable for r in rows], [r.is_renting for r in rows],
            [g.lat for g in geo], [g.lon for g in geo], [r.duedate for r in rows], [r.mechanical for r in rows],
            [r.ebike for r in rows], [r.is_returning for r in rows])


def _line_count(raw: bytes, end: int) -> int | None:
    """The number of lines in raw[:end] when every newline there sits between a "}" and a "{",
    else None (the record path then reads the object line by line).

    Why that is enough for decoding the lines as one stream (msgspec's decode_lines, which is
    laxer: it reads values across and within lines): a JSON string holds no raw newline, and
    after a "}" inside an object or array only ",", "}" or "]" may follow, so each such newline
    separates two top-level values. Every line then holds at least one whole value, and when
    the stream decodes to exactly as many values as there are lines, each line holds exactly
    one, as per-line decoding requires. One stream instead of bytes.split and a call a line:
    1.92 -> 1.56 ms for a 1,400-line snapshot; this check costs 0.15 ms.
    """
    a = np.frombuffer(raw, dtype=np.uint8, count=end)
    nl = np.flatnonzero(a == _NEWLINE)
    if not len(nl):
        return 1
    if nl[0] == 0 or nl[-1] == end - 1:  # a blank line
        return None
    if not ((a[nl - 1] == _CLOSE).all() and (a[nl + 1] == _OPEN).all()):
        return None
    return len(nl) + 1


def _clean_typed(raw: bytes, ref: SnapshotRef, known_codes: Container[str] = ()):
    """(codes, obs, bikes, capacity, installed, docks, renting, lat, lon, mechanical, ebike, returning) when every line passes
    every rule of record_from_v21, else None (the record path then names each rejection).

    Each line decodes as if on its own, as the record path does (see _line_count); a blank line
    takes the record path. Real nightly (45 snapshots, 62,114 lines, load 1.8): 0.27 s CPU
    against 0.36 s for Arrow's JSON reader plus the column checks it needed; decoding is ~1.1 us
    a line, less than orjson.loads, which builds a dict per line. Lines are decoded a block of
    bytes at a time so a 100,000-station snapshot never holds all its lines at once.
    """
    end = len(raw) - raw.endswith(b"\n")
    lines = _line_count(raw, end)
    if lines is None:
        return None
    columns: tuple[list, ...] = ()
    start = decoded = 0
    view = memoryview(raw)
    try:
        while start < end:
            stop = raw.find(b"\n", min(start + C.PARSE_BLOCK_BYTES, end))
            stop = end if stop < 0 else min(stop, end)
            rows = _decode_lines(view[start:stop])
            decoded += len(rows)
            part = _columns(rows)
            if not columns:
                columns = part
            else:  # list.extend, not a comprehension: 1.5 s of the 100,000-station case's 26 s
                for whole, more in zip(columns, part):
                    whole.extend(more)
            start = stop + 1
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        return None
    if decoded != lines:  # at least one line, so at least one block was decoded
        return None
    codes, bikes, capacity, installed, docks, renting, lat, lon, dues, mechanical, ebike, returning = columns
    if len(set(codes)) != len(codes):
        return None
    if not all(map(known_codes.__contains__, codes)) and not all(map(_CODE_RE.fullmatch, codes)):
        return None
    obs = _obs_of(dues, ref)
    if obs is None:
        return None
    return (codes, obs, np.array(bikes, dtype=np.int64), np.array(capacity, dtype=np.int64),
            _flags(installed), np.array(docks, dtype=np.int64), _flags(renting),
            np.array(lat, dtype=np.float64), np.array(lon, dtype=np.float64),
            np.array(mechanical, dtype=np.int64), np.array(ebike, dtype=np.int64), _flags(returning))


def _flags(values: list[str]) -> np.ndarray:
    """OUI -> True, NON -> False (the decoder allows nothing else). Nearly every station is
    installed and renting: list.count settles that case at 0.06 ms for 100,000 values, against
    8.6 ms for a comparison per value."""
    if values.count("OUI") == len(values):
        return np.ones(len(values), dtype=bool)
    # each value is three ASCII letters: compared as one byte string, 4x cheaper than per value
    return np.frombuffer("".join(values).encode("ascii"), dtype="S3") == b"OUI"


def _obs_of(dues: list, ref: SnapshotRef) -> np.ndarray | None:
    """Epoch seconds of the duedates (None: the capture time), or None when any is not plainly valid."""
    if None in dues:
        capture = int(ref.capture_ts.timestamp())
        known = [i for i, d in enumerate(dues) if d is not None]
        obs = np.full(len(dues), capture, dtype=np.int64)
        if known:
            part = _obs_of([dues[i] for i in known], ref)
            if part is None:
                return None
            obs[known] = part
        return obs
    # Not pa.array(dues): its first call imports pandas (0.25 s in a fresh process).
    fixed = _obs_seconds_fixed(dues, ref)
    return fixed if fixed is not None else _obs_seconds(dues, ref)


# "YYYY-MM-DDTHH:MM:SS+HH:MM", as _LOCAL_RE and _OFFSET_RE accept it: the date's digits and the
# separators, position by position; the two-digit fields are read by _PAIRS below
_DATE_DIGITS = (0, 1, 2, 3, 5, 6, 8, 9)
_SEPARATORS = {4: b"-", 7: b"-", 10: b"T", 13: b":", 16: b":", 22: b":"}
_INVALID = -(1 << 28)  # any sum holding one stays negative (three fit in an int32)


def _pair_table(largest: int, scale: int) -> np.ndarray:
    """Two ASCII digits read as one little-endian uint16 -> value x scale for 00..largest, else _INVALID."""
    table = np.full(1 << 16, _INVALID, dtype=np.int32)
    v = np.arange(largest + 1)
    table[(v // 10 + ord("0")) | ((v % 10 + ord("0")) << 8)] = v * scale
    return table


# position of the pair -> its table: hour, minute, second of the local time; the offset's hours and
# minutes, whose minutes may pass 59 as fromisoformat allows (see _offset_seconds)
_PAIRS = {11: _pair_table(23, 3600), 14: _pair_table(59, 60), 17: _pair_table(59, 1)}
_OFFSET_PAIRS = {20: _pair_table(99, 3600), 23: _pair_table(99, 60)}


def _pairs(blob: bytes, n: int, tables: dict[int, np.ndarray]) -> np.ndarray:
    """Sum over {position: table} of each duedate's two digits there, looked up in the table."""
    return sum(t[np.ndarray((n,), "<u2", blob, i, (26,))] for i, t in tables.items())


def _obs_seconds_fixed(dues: list[str], ref: SnapshotRef) -> np.ndarray | None:
    """_obs_seconds for the common shape, on the bytes of all the duedates at once; None otherwise.

    Each check reads one byte position of every duedate as a strided slice of the joined bytes
    (one C loop, ~2 us), the time fields are looked up two digits at a time and only the date is
    parsed by NumPy: 0.30 -> 0.12 ms a 1,400-line snapshot, against a (n, 26) byte matrix
    checked and parsed column by column (24 array operations of 3..5 us, and 0.11 ms to parse).
    """
    n = len(dues)
    # NUL-separated, every duedate is 25 ASCII characters exactly when the length is 26 n - 1 and
    # every 26th byte is a NUL: a NUL, a non-ASCII character or a duedate longer than another
    # moves one of them, and the position checks below find no NUL elsewhere
    blob = "\0".join(dues).encode() + b"\0"
    if len(blob) != 26 * n or blob[25::26] != bytes(n):
        return None
    # nearly always one date for the whole snapshot: then its first duedate's is checked and parsed
    # for all (0.05 ms of the 0.17 ms was NumPy parsing the same date 1,400 times)
    rows = 1 if all(blob[i::26] == blob[i:i + 1] * n for i in _DATE_DIGITS) else n
    if not all(blob[i:26 * rows:26].isdigit() for i in _DATE_DIGITS):
        return None
    signs = blob[19::26]
    if any(blob[i::26] != sep * n for i, sep in _SEPARATORS.items()) or signs.translate(None, b"+-"):
        return None
    time_of_day, offset = _pairs(blob, n, _PAIRS), _pairs(blob, n, _OFFSET_PAIRS)
    if time_of_day.min() < 0 or offset.min() < 0 or offset.max() >= 86400:
        return None  # a field out of range; read as a time, +99:99 would move a record four days
    try:  # NumPy checks the calendar: month, day of the month, leap years
        days = np.ndarray((rows,), "S10", blob, 0, (26,)).astype("datetime64[D]").astype(np.int64)
    except ValueError:
        return None
    west = np.frombuffer(signs, dtype=np.uint8) == ord("-")
    obs = days * 86400 + time_of_day - np.where(west, -offset, offset)
    # Before 1970 (year 0000 and year-1 overflow live there) or after the capture: the record path says which.
    if obs.min() < 0 or obs.max() > ref.capture_ts.timestamp() + C.FUTURE_DUEDATE_TOLERANCE_S:
        return None
    return obs


_OFFSET_RE = re.compile(r"([+-])([0-9]{2}):([0-9]{2})")
_LOCAL_RE = re.compile(r"(?!0000)[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}[+-]")
def _offset_seconds(off: str) -> int | None:
    """fromisoformat's rule: minutes may pass 59 (+00:60 is +01:00), the offset must stay under 24 h."""
    m = _OFFSET_RE.fullmatch(off)
    if not m:
        return None
    sec = int(m.group(2)) * 3600 + int(m.group(3)) * 60
    if sec >= 86400:
        return None  # read as a time, +99:99 would move a record four days
    return -sec if m.group(1) == "-" else sec


def _obs_seconds(dues, ref: SnapshotRef) -> np.ndarray | None:
    """Epoch seconds of the duedates, or None when any is not plainly valid (the record path decides)."""
    if set(map(type, dues)) != {str}:
        return None  # null duedates and odd types take the record-by-record path
    if set(map(len, dues)) == {25}:
        # "YYYY-MM-DDTHH:MM:SS+HH:MM": NumPy parses the local part, the offsets are few.
        # NumPy is laxer than fromisoformat (a space for T, year 0), so the shape is checked first.
        if not all(map(_LOCAL_RE.match, dues)):
            return None
        offsets: dict[str, int] = {}
        for off in {s[19:] for s in dues}:
            seconds = _offset_seconds(off)
            if seconds is None:
                return None
            offsets[off] = seconds
        try:
            local = np.array([s[:19] for s in dues], dtype="datetime64[s]").astype(np.int64)
        except ValueError:
            return None
        if len(offsets) == 1:
            obs = local - next(iter(offsets.values()))
        else:
            obs = local - np.array([offsets[s[19:]] for s in dues], dtype=np.int64)
    else:
        out = []
        for s in dues:
            try:
                dt = datetime.fromisoformat(s)
            except ValueError:
                return None
            if dt.tzinfo is None or (dt - ref.capture_ts).total_seconds() > C.FUTURE_DUEDATE_TOLERANCE_S:
                return None  # the second test exactly as record_from_v21 (fractions of a second)
            out.append(int(dt.timestamp()))
        obs = np.array(out, dtype=np.int64)
    # Before 1970 (year-1 overflow lives there) or after the capture: the record path says which.
    if (obs < 0).any() or (obs > ref.capture_ts.timestamp() + C.FUTURE_DUEDATE_TOLERANCE_S).any():
        return None
    return obs


# ---------------------------------------------------------------- writing
def encode_snapshot(records: Iterable[dict], capture_ts: datetime) -> bytes:
    """Gzipped JSON Lines; mtime=0 so the same records always give the same bytes."""
    cap = iso_second(capture_ts.astimezone(UTC))
    lines = [dumps_bytes({**r, "capture_ts_utc": cap}) for r in records]
    body = b"\n".join(lines) + (b"\n" if lines else b"")
    return gzip.compress(body, compresslevel=C.SNAPSHOT_GZIP_LEVEL, mtime=0)


def write_snapshot(
    storage: st.Storage, root: str, capture_ts: datetime, records: Iterable[dict], layout: str = "partitioned"
) -> str:
    uri = snapshot_uri(root, capture_ts, layout)
    storage.write_bytes(uri, encode_snapshot(records, capture_ts), content_type="application/gzip")
    return uri
