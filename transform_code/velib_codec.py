"""Request decoding, per-record validation and response encoding for the three content types.

text/csv: one record per line, no header, the 36 FEATURE_COLUMNS.
application/jsonlines: one JSON object per line, either the `features` object
    ({"history": [24 values, oldest first], "hour": ..., ..., "lon": ...}) that InputFilter
    `$.features` leaves, or the full transform-input record holding it under "features".
application/json: one such object, or a list of them.

Every rejection is a BadRequest naming the line (or list item) and the field, with the fix.
"""

import json
import math

import numpy as np

try:
    from . import velib_features as F
    from .velib_errors import BadRequest, NotAcceptable, UnsupportedContentType
except ImportError:  # code/ on sys.path, as in the SageMaker container
    import velib_features as F
    from velib_errors import BadRequest, NotAcceptable, UnsupportedContentType

CSV = "text/csv"
JSONLINES = "application/jsonlines"
JSON = "application/json"
ANY = "*/*"
SUPPORTED = (CSV, JSONLINES, JSON)
_ALIASES = {"application/x-jsonlines": JSONLINES, "application/jsonl": JSONLINES}
MAX_ERRORS_REPORTED = 10

# What a plausible station is: a copy of velibcast/constants.py ("what a valid station
# record is"), which this self-contained package cannot import. Snapshot validation rejects
# the same records, so a shard never holds one this server refuses; a test keeps them equal.
SERVICE_AREA_LAT = (48.6, 49.1)
SERVICE_AREA_LON = (2.0, 2.7)
STATION_CAPACITY_MAX = 200
STATION_COUNT_MAX = 200

_N = len(F.FEATURE_COLUMNS)
_INT_FIELDS = {  # field -> inclusive range; None = no upper bound
    "hour": (0, 23),
    "day_of_week": (0, 6),
    F.NON_WORKING: (0, 1),
    F.NON_WORKING_NEXT: (0, 1),
    "capacity": (0, STATION_CAPACITY_MAX),
    "station_index": (0, None),
    F.STATE_AGE: (0, None),
    F.STALE: (0, 1),
    F.CLOCK_CHANGE: (-1, 1),
    F.CLOCK_CHANGE_AT: (0, F.MAX_HORIZON),
}
_RANGES = {"lat": SERVICE_AREA_LAT, "lon": SERVICE_AREA_LON}
_JSON_FIELDS = [f"{F.HISTORY_KEY}[{j}]" for j in range(F.HISTORY_LEN)] + F.STATIC_FEATURES


def media_type(header):
    """`text/csv; charset=utf-8` -> `text/csv`; aliases folded; None stays None."""
    if header is None:
        return None
    mt = header.split(";", 1)[0].strip().lower()
    return _ALIASES.get(mt, mt)


def response_type(accept, request_type):
    """The response media type for an Accept header: the first supported entry; `*/*` or none -> the request's type."""
    if not accept:
        return request_type
    for entry in accept.split(","):
        mt = media_type(entry)
        if mt == ANY:
            return request_type
        if mt in SUPPORTED:
            return mt
    raise NotAcceptable(
        f"Accept {accept!r} names no supported type; use one of {', '.join(SUPPORTED)} "
        "(the response has one line or object per record)"
    )


class Batch:
    """Decoded records: x float64 (n, len(FEATURE_COLUMNS)) in FEATURE_COLUMNS order; record_ids when the input carried them."""

    __slots__ = ("x", "record_ids", "content_type", "single", "where")

    def __init__(self, x, record_ids, content_type, where):
        self.x = x
        self.record_ids = record_ids
        self.content_type = content_type
        self.where = where  # (unit, field names) for messages: ("line", FEATURE_COLUMNS) for CSV
        self.single = False  # application/json sent one object, not a list


def decode(body, content_type):
    """Parses and validates everything but the station index's upper bound (see check_station_index)."""
    ct = media_type(content_type)
    if ct not in SUPPORTED:
        raise UnsupportedContentType(
            f"Content-Type {content_type!r} is not supported; send one of {', '.join(SUPPORTED)}"
        )
    text = _text(body)
    if not text.strip():
        raise BadRequest("the request body is empty; send at least one record")
    if ct == CSV:
        batch = Batch(_parse_csv(text), None, ct, ("line", F.FEATURE_COLUMNS))
    elif ct == JSONLINES:
        lines = _lines(text)
        objs = []
        for i, line in enumerate(lines, 1):
            objs.append(_json(line, f"line {i}", "send one JSON object per line"))
        batch = _from_objects(objs, ct, "line")
    else:
        doc = _json(text, "the body", "send one object or a list of objects")
        single = isinstance(doc, dict)
        if not single and not isinstance(doc, list):
            raise BadRequest("the JSON body must be an object or a list of objects")
        if not single and not doc:
            raise BadRequest("the JSON list is empty; send at least one record")
        batch = _from_objects([doc] if single else doc, ct, "record")
        batch.single = single
    _validate(batch.x, batch.where, None)
    return batch


def check_station_index(batch, n_stations):
    """The model knows stations 1..n_stations; the handlers learn n only once the model is loaded."""
    _validate(batch.x, batch.where, n_stations)


def encode(quantities, unknown, batch, accept):
    """quantities (n, MAX_HORIZON, len(OUTPUT_QUANTITIES)) as served: CSV lines of the OUTPUT_COLUMNS values;
    JSON forms: objects keyed by OUTPUT_COLUMNS, with `unknown_station` (and `record_id` when the input had one)."""
    rt = response_type(accept, batch.content_type)
    rows = _values(quantities)
    if rt == CSV:
        return "".join(",".join(map(str, row)) + "\n" for row in rows), rt
    objs = []
    ids = batch.record_ids
    for i, (row, unk) in enumerate(zip(rows, unknown.tolist())):
        o = {} if ids is None or ids[i] is None else {"record_id": ids[i]}
        o.update(zip(F.OUTPUT_COLUMNS, row))
        o["unknown_station"] = unk
        objs.append(o)
    if rt == JSONLINES:
        return "".join(json.dumps(o, separators=(",", ":")) + "\n" for o in objs), rt
    return json.dumps(objs[0] if batch.single else objs, separators=(",", ":")), rt


def _values(quantities):
    """Rows of OUTPUT_COLUMNS values: bikes as ints, probabilities as floats (already rounded, so
    their shortest repr has at most 3 decimals)."""
    q = np.asarray(quantities, dtype=np.float64)
    n = len(q)
    bikes = q.astype(np.int64).astype(object)
    values = np.where(_IS_PROBABILITY, q.astype(object), bikes).reshape(n, len(F.OUTPUT_COLUMNS))
    return values.tolist()


_IS_PROBABILITY = np.array([name in F.PROBABILITIES for name in F.OUTPUT_QUANTITIES])


def _json(text, where, fix):
    try:
        return json.loads(text)
    except ValueError as e:
        raise BadRequest(f"{where}: not valid JSON ({e}); {fix}") from None
    except RecursionError:  # deeply nested JSON: a client error, not a 500 the runtime would retry
        raise BadRequest(f"{where}: JSON nested too deeply; {fix}") from None


def _text(body):
    if isinstance(body, str):
        return body
    try:
        return bytes(body).decode("utf-8")
    except UnicodeDecodeError as e:
        line = bytes(body)[: e.start].count(b"\n") + 1
        raise BadRequest(
            f"line {line}: byte {e.start} is not UTF-8 ({bytes(body)[e.start:e.start + 1]!r}); send UTF-8 text"
        ) from None


def _lines(text):
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    lines = [ln[:-1] if ln.endswith("\r") else ln for ln in lines]
    for i, ln in enumerate(lines, 1):
        if not ln.strip():
            raise BadRequest(f"line {i} is empty; send one record per line, no blank lines")
    return lines


def _parse_csv(text):
    lines = _lines(text)
    try:
        # numpy's C reader: 6 ms for 3,000 nightly records against 16 ms for str fields through
        # np.array (bench/transform.py's input_fn). What it reads, float() reads to the
        # same value; what it refuses (a short row, "1_0", a non-ASCII digit) takes the path below,
        # which accepts what float() accepts and names the line of a bad record.
        x = np.loadtxt(lines, delimiter=",", dtype=np.float64, comments=None, quotechar=None, ndmin=2)
        if x.shape[1] == _N:
            return x
    except ValueError:
        pass
    rows = [ln.split(",") for ln in lines]
    errors = []
    for i, r in enumerate(rows, 1):
        if len(r) != _N:
            errors.append(
                f"line {i}: {len(r)} columns, expected {_N} ({', '.join(F.FEATURE_COLUMNS[:2])}, ..., {F.FEATURE_COLUMNS[-1]}); "
                "send the feature columns only (InputFilter drops record_id), no header"
            )
            if len(errors) >= MAX_ERRORS_REPORTED:
                break
    _raise(errors, len(rows))
    flat = [f for r in rows for f in r]
    try:
        x = np.array(flat, dtype=np.float64)
    except ValueError:
        for k, s in enumerate(flat):
            try:
                float(s)
            except ValueError:
                errors.append(
                    f"line {k // _N + 1}, field {F.FEATURE_COLUMNS[k % _N]}: {s!r} is not a number; send a decimal number"
                )
                if len(errors) >= MAX_ERRORS_REPORTED:
                    break
        _raise(errors, len(rows))
    return x.reshape(len(rows), _N)


def _from_objects(objs, ct, unit):
    x = np.empty((len(objs), _N), dtype=np.float64)
    ids = []
    errors = []
    for i, o in enumerate(objs):
        where = f"{unit} {i + 1}"
        try:
            feats, rid = _features_of(o, where)
            x[i] = _row(feats, where)
            ids.append(rid)
        except BadRequest as e:
            errors.append(e.message)
            if len(errors) >= MAX_ERRORS_REPORTED:
                break
    _raise(errors, len(objs))
    return Batch(x, ids if any(r is not None for r in ids) else None, ct, (unit, _JSON_FIELDS))


def _features_of(o, where):
    if not isinstance(o, dict):
        raise BadRequest(f"{where}: expected a JSON object, got {type(o).__name__}")
    if "features" in o:
        feats = o["features"]
        if not isinstance(feats, dict):
            raise BadRequest(f"{where}, field features: expected an object, got {type(feats).__name__}")
        rid = o.get("record_id")
        return feats, None if rid is None else str(rid)
    return o, None


def _row(feats, where):
    hist = feats.get(F.HISTORY_KEY)
    if not isinstance(hist, list) or len(hist) != F.HISTORY_LEN:
        got = "missing" if hist is None else (f"{len(hist)} values" if isinstance(hist, list) else type(hist).__name__)
        raise BadRequest(f"{where}, field {F.HISTORY_KEY}: expected a list of {F.HISTORY_LEN} numbers, oldest first; got {got}")
    values = []
    for j, v in enumerate(hist):
        values.append(_number(v, f"{where}, field {F.HISTORY_KEY}[{j}]"))
    for name in F.STATIC_FEATURES:
        if name not in feats:
            old = [k for k, new in F.LEGACY_COLUMNS.items() if new == name and k in feats]
            if old:
                raise BadRequest(f"{where}, field {name}: missing, but {old[0]} is given: this record follows feature "
                                 f"contract 1; contract {F.FEATURE_CONTRACT} replaced {old[0]} (weekends only) with "
                                 f"{name} (weekends and French public holidays); regenerate the inputs with "
                                 "`velibcast windows`")
            raise BadRequest(f"{where}, field {name}: missing; the features object needs {', '.join([F.HISTORY_KEY] + F.STATIC_FEATURES)}")
        values.append(_number(feats[name], f"{where}, field {name}"))
    return values


def _number(v, where):
    if isinstance(v, (int, float)):  # bool is an int: non_working_day may come as true/false
        try:
            return float(v)
        except OverflowError:  # an int beyond float range, e.g. 10**400
            raise BadRequest(f"{where}: {str(v)[:20]}... ({len(str(v))} digits) is out of range; send a plausible number") from None
    if v is None:
        return math.nan  # reported by _validate with the other NaNs
    raise BadRequest(f"{where}: {v!r} is not a number; send a JSON number")


def _validate(x, where, n_stations):
    """Checks every record; reports up to MAX_ERRORS_REPORTED problems, each with its line and field."""
    unit, field_names = where
    bad = ~np.isfinite(x)
    hist = x[:, : F.HISTORY_LEN]
    bad_hist = np.zeros_like(bad)
    bad_hist[:, : F.HISTORY_LEN] = np.isfinite(hist) & (hist < 0)
    big_hist = np.zeros_like(bad)
    big_hist[:, : F.HISTORY_LEN] = np.isfinite(hist) & (hist > STATION_COUNT_MAX)
    checks = [(bad, "is {v}; every feature must be a finite number (a window with gaps must be skipped upstream)"),
              (bad_hist, "is {v}; bike counts cannot be negative"),
              (big_hist, f"is {{v}}; a station holds at most {STATION_COUNT_MAX} bikes")]
    for name, (lo, hi) in _INT_FIELDS.items():
        col = x[:, F.COL[name]]
        if name == "station_index":
            hi = n_stations  # None until the model is known
        m = np.zeros_like(bad)
        m[:, F.COL[name]] = np.isfinite(col) & ((col != np.round(col)) | (col < lo) | ((col > hi) if hi is not None else False))
        rng = f"an integer in [{lo}, {hi}]" if hi is not None else f"an integer >= {lo}"
        hint = (f"; use {F.UNKNOWN_STATION_INDEX} for stations not in this model's station_mappings.json"
                if name == "station_index" else "")
        checks.append((m, "is {v}; must be " + rng + hint))
    for name, (lo, hi) in _RANGES.items():
        col = x[:, F.COL[name]]
        m = np.zeros_like(bad)
        m[:, F.COL[name]] = np.isfinite(col) & ((col < lo) | (col > hi))
        checks.append((m, f"is {{v}}; must be in [{lo}, {hi}] degrees (the Vélib' service area)"))
    errors = []
    n_bad = 0
    for mask, what in checks:
        if not mask.any():
            continue
        rows, cols = np.nonzero(mask)
        n_bad += len(rows)
        for r, c in zip(rows[:MAX_ERRORS_REPORTED].tolist(), cols[:MAX_ERRORS_REPORTED].tolist()):
            errors.append((r, f"{unit} {r + 1}, field {field_names[c]}: " + what.format(v=_fmt(x[r, c]))))
    if errors:
        errors.sort(key=lambda e: e[0])
        msgs = [m for _, m in errors[:MAX_ERRORS_REPORTED]]
        more = f" (and {n_bad - len(msgs)} more)" if n_bad > len(msgs) else ""
        raise BadRequest("; ".join(msgs) + more)


def _fmt(v):
    if not math.isfinite(v):
        return "NaN" if math.isnan(v) else str(v)
    return str(int(v)) if float(v).is_integer() else repr(float(v))


def _raise(errors, n):
    if errors:
        more = " (stopped after the first problems)" if len(errors) >= MAX_ERRORS_REPORTED else ""
        raise BadRequest("; ".join(errors) + more + f" [{n} records in the request]")
