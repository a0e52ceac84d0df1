"""Join Batch Transform outputs back to their windows; the forecast table's objects.

The forecast dataset is Hive-partitioned by `product` and `run_date` with exactly one object
per partition, `forecasts/product=P/run_date=YYYY-MM-DD/part-0.parquet`, holding the product's
forecasts whose origin falls on that Europe/Paris day (flows/products.py). Writing a date is one whole-object PUT (or an atomic
rename locally), so readers see the previous object or the new one, never half of one.
Each object carries, in its Parquet key-value metadata, the manifest of every run whose
rows it holds (`velibcast.manifests`): a published date always has its manifest, in the
same object. flows/publish.py decides what an object holds and writes it under a lock.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from datetime import date, datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from velibcast import storage as st
from velibcast.datasets import assemble
from velibcast.datasets.records import output_lines, parse_output_line
from velibcast.errors import DataError
from velibcast.flows.products import Product
from velibcast.timeutil import PARIS, iso_minute
from velibcast.transform_code.velib_features import BIKES, FALLBACKS, MAX_HORIZON, OUTPUT_QUANTITIES, PROBABILITIES

PART_NAME = "part-0.parquet"
MANIFESTS_KEY = b"velibcast.manifests"  # Parquet key-value metadata: {run_id: manifest} of the rows' runs
KEY_COLUMNS = ("station_code", "origin_ts", "horizon_h")
HOUR_US = 3_600_000_000

SCHEMA = pa.schema([
    pa.field("station_code", pa.string(), nullable=False),
    pa.field("origin_ts", pa.timestamp("us", tz="UTC"), nullable=False),
    pa.field("horizon_h", pa.int8(), nullable=False),
    pa.field("target_ts", pa.timestamp("us", tz="UTC"), nullable=False),
    pa.field("bikes_pred", pa.int32(), nullable=False),
    pa.field("bikes_p10", pa.int32(), nullable=False),
    pa.field("bikes_p50", pa.int32(), nullable=False),
    pa.field("bikes_p90", pa.int32(), nullable=False),
    pa.field("p_empty", pa.float32(), nullable=False),
    pa.field("p_full", pa.float32(), nullable=False),
    pa.field("capacity", pa.int32(), nullable=False),
    pa.field("unknown_station", pa.bool_(), nullable=False),
    pa.field("fallback", pa.string(), nullable=False),   # "" when the model served the row, else the fallback's name (FALLBACKS)
    pa.field("product", pa.string(), nullable=False),
    pa.field("model_version", pa.string(), nullable=False),
    pa.field("run_id", pa.string(), nullable=False),
])
# The model's OUTPUT_QUANTITIES as they are named in the table (`fallback` is decoded to its name).
VALUE_COLUMNS = dict(zip(OUTPUT_QUANTITIES, ("bikes_pred", "bikes_p10", "bikes_p50", "bikes_p90", "p_empty", "p_full",
                                             "fallback")))
FALLBACK_CODES = ", ".join(f"{code} ({name or 'the model'})" for code, name in enumerate(FALLBACKS))


@dataclass(frozen=True)
class SentRecord:
    """What the join needs to know about one record sent to the transform."""

    station_code: str
    origin_ts: datetime  # UTC
    capacity: int
    unknown_station: bool


def index_of(sent: dict[str, SentRecord]) -> pa.Table:
    """The record index (as the windows stage writes it) of records held as SentRecords."""
    recs = list(sent.values())
    return pa.table([list(sent), [r.station_code for r in recs], [r.origin_ts for r in recs],
                     [r.capacity for r in recs], [r.unknown_station for r in recs]], schema=assemble.INDEX_SCHEMA)


def join_predictions(sent: dict[str, SentRecord], outputs: list[tuple[str, bytes]], fmt: str,
                     model_version: str, run_id: str, product: Product) -> pa.Table:
    """join_index for records held as SentRecords."""
    return join_index(index_of(sent), outputs, fmt, model_version, run_id, product)


def check_prediction_values(values: np.ndarray, capacity: np.ndarray) -> tuple[int, str] | None:
    """The rule for a model's output, checked like a snapshot record: None when every record's
    values are possible, else (the first bad record's position, what is wrong with it).

    values: (records, MAX_HORIZON, OUTPUT_QUANTITIES) as parsed; capacity: (records,). Bikes are
    whole numbers in [0, capacity], probabilities in [0, 1], p10 <= p50 <= p90, and the fallback one of
    the codes of FALLBACKS. A value of a big station's line landing on a small station (lines out of
    order) breaks the first rule.
    """
    q = {name: values[:, :, i] for i, name in enumerate(OUTPUT_QUANTITIES)}
    cap = capacity.astype(np.float64)[:, None]
    problems = []
    for name in BIKES:
        v = q[name]
        problems.append((~((v >= 0) & (v <= cap) & (v == np.round(v))), f"{name} not a whole number in [0, capacity]"))
    for name in PROBABILITIES:
        v = q[name]
        problems.append((~((v >= 0) & (v <= 1)), f"{name} outside [0, 1]"))
    code = q["fallback"]
    problems.append((~np.isin(code, np.arange(len(FALLBACKS))), f"fallback code not one of {FALLBACK_CODES}"))
    problems.append(((q["bikes_p10"] > q["bikes_p50"]) | (q["bikes_p50"] > q["bikes_p90"]), "quantiles out of order"))
    for bad, what in problems:  # NaN fails every comparison, so it is caught as out of range
        rows = np.flatnonzero(bad.any(axis=1))
        if len(rows):
            i = int(rows[0])
            h = int(np.flatnonzero(bad[i])[0])
            return i, f"{what} at +{h + 1} h ({', '.join(f'{n}={q[n][i, h]:g}' for n in OUTPUT_QUANTITIES)}; capacity {int(cap[i, 0])})"
    return None


def join_index(index: pa.Table, outputs: list[tuple[str, bytes]], fmt: str, model_version: str,
               run_id: str, product: Product) -> pa.Table:
    """Exactly one valid prediction per record of the index, or a DataError naming what is off.

    Lines are parsed one by one (each error names its line); values are checked against the
    record's capacity (check_prediction_values) before any row is built; the rows are built by
    columns, each record's index row taken once per horizon of the product."""
    ids = index.column("record_id").to_pylist()
    position = {record_id: i for i, record_id in enumerate(ids)}
    seen: dict[str, tuple[str, int]] = {}
    rows: list[int] = []
    values: list[list] = []
    width = len(OUTPUT_QUANTITIES) * MAX_HORIZON
    for uri, body in outputs:
        for line, text in output_lines(body, uri):
            record_id, vals = parse_output_line(text, fmt, f"{uri} line {line}")
            i = position.get(record_id)
            if i is None:
                raise DataError(f"{uri} line {line}", f"record_id {record_id!r} was never sent",
                                "the output prefix holds objects of another run; clear it and rerun")
            if record_id in seen:
                first = seen[record_id]
                raise DataError(f"{uri} line {line}", f"second prediction for {record_id!r} (first at {first[0]} line {first[1]})",
                                "the input prefix holds a shard twice; clear the run's transform folder and rerun")
            if len(vals) != width:
                raise DataError(f"{uri} line {line}", f"{len(vals)} output values for {record_id!r}, expected {width}",
                                "the model does not serve this feature contract; package it with its transform_code")
            seen[record_id] = (uri, line)
            rows.append(i)
            values.append(vals)
    missing = [r for r in position if r not in seen]
    if missing:
        raise DataError(f"transform output ({len(outputs)} objects)",
                        f"{len(missing)} of {len(position)} records have no prediction, e.g. {missing[:3]}",
                        "the transform job did not complete every object; see its FailureReason")
    taken = np.asarray(rows, dtype=np.int64)
    v = np.asarray(values, dtype=np.float64).reshape(len(rows), MAX_HORIZON, len(OUTPUT_QUANTITIES))
    capacity = index.column("capacity").to_numpy()[taken] if len(rows) else np.zeros(0)
    bad = check_prediction_values(v, capacity)
    if bad is not None:
        i, what = bad
        uri, line = seen[ids[rows[i]]]
        raise DataError(f"{uri} line {line}", f"record {ids[rows[i]]!r}: {what}",
                        "the model's output is not a possible state of the station; nothing was published. "
                        "Check the model's output_fn (and that it returns its lines in request order)")
    horizons = np.asarray(product.horizons, dtype=np.int64)
    n, per = len(rows), len(horizons)
    sent = index.take(pa.array(np.repeat(taken, per)))
    hours = np.tile(horizons, n)
    kept = v[:, horizons - 1, :].reshape(n * per, len(OUTPUT_QUANTITIES))
    origin = sent.column("origin_ts")
    cols = {"station_code": sent.column("station_code"), "origin_ts": origin,
            "horizon_h": pa.array(hours.astype(np.int8)),
            "target_ts": pc.add(origin, pa.array(hours * HOUR_US, pa.duration("us"))),
            "capacity": sent.column("capacity"), "unknown_station": sent.column("unknown_station"),
            "product": pa.repeat(pa.scalar(product.name), n * per),
            "model_version": pa.repeat(pa.scalar(model_version), n * per), "run_id": pa.repeat(pa.scalar(run_id), n * per)}
    for k, name in enumerate(OUTPUT_QUANTITIES):
        column = VALUE_COLUMNS[name]
        if name in PROBABILITIES:
            cols[column] = pa.array(kept[:, k], SCHEMA.field(column).type)
        elif name in BIKES:
            cols[column] = pa.array(kept[:, k].astype(np.int32))
        else:  # the fallback's code, checked above, by its name
            cols[column] = pa.array(np.asarray(FALLBACKS, dtype=object)[kept[:, k].astype(np.int64)], pa.string())
    table = pa.table([cols[f.name] for f in SCHEMA], schema=SCHEMA)
    return sort_rows(table)


def partition_uri(root: str, product: str, run_date: date) -> str:
    return st.join(root, "forecasts", f"product={product}", f"run_date={run_date.isoformat()}", PART_NAME)


def paris_date(ts: datetime) -> date:
    """The partition of an origin: its Europe/Paris calendar day."""
    return ts.astimezone(PARIS).date()


def empty_table() -> pa.Table:
    return SCHEMA.empty_table()


def sort_rows(table: pa.Table) -> pa.Table:
    return table.sort_by([(c, "ascending") for c in KEY_COLUMNS])


def split_by_date(table: pa.Table) -> dict[date, pa.Table]:
    """Rows grouped by the Paris date of their origin."""
    origins = table.column("origin_ts").unique().to_pylist()
    by_date: dict[date, list] = {}
    for o in origins:
        by_date.setdefault(paris_date(o), []).append(o)
    return {d: table.filter(pc.is_in(table.column("origin_ts"), pa.array(os_, SCHEMA.field("origin_ts").type)))
            for d, os_ in sorted(by_date.items())}


def check_partition(table: pa.Table, run_date: date, where: str) -> None:
    """One row per (station_code, origin_ts, horizon_h), every origin on `run_date` (Paris)."""
    wrong = sorted({o for o in table.column("origin_ts").unique().to_pylist() if paris_date(o) != run_date})
    if wrong:
        raise DataError(where, f"origin {iso_minute(wrong[0])} is on {paris_date(wrong[0])} in Paris, "
                        f"not on the partition's date {run_date}", "a bug in the publish step: report it")
    keys = table.group_by(list(KEY_COLUMNS)).aggregate([([], "count_all")])
    dup = keys.filter(pc.greater(keys.column("count_all"), 1))
    if dup.num_rows:
        r = dup.slice(0, 1).to_pylist()[0]
        raise DataError(where, f"{dup.num_rows} (station_code, origin_ts, horizon_h) keys appear twice, e.g. "
                        f"station {r['station_code']} at {iso_minute(r['origin_ts'])} +{r['horizon_h']} h",
                        "nothing was written; a bug in the publish step: report it")


def to_parquet_bytes(table: pa.Table, manifests: dict[str, dict] | None = None) -> bytes:
    if manifests is not None:
        table = table.replace_schema_metadata({MANIFESTS_KEY: json.dumps(manifests).encode()})
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    return buf.getvalue()


def publish(storage: st.Storage, root: str, product: str, run_date: date, table: pa.Table,
            manifests: dict[str, dict] | None = None) -> str:
    """Write one date's object whole (flows/publish.py calls this under the date's lock).

    The product is the partition's folder and not a column of the object, as run_date is: Hive
    readers take both from the path, and a column of the same name clashes with the folder's
    (pandas and pyarrow refuse to merge the two types; Athena cannot declare both)."""
    uri = partition_uri(root, product, run_date)
    others = sorted(set(table.column("product").unique().to_pylist()) - {product})
    if others:
        raise DataError(uri, f"rows of product {others[0]!r} in the partition of product {product!r}",
                        "nothing was written; a bug in the publish step: report it")
    storage.write_bytes(uri, to_parquet_bytes(table.drop_columns(["product"]), manifests),
                        content_type="application/vnd.apache.parquet")
    return uri


def read_partition(storage: st.Storage, root: str, product: str, run_date: date) -> pa.Table:
    """A date's rows as SCHEMA has them: the product column comes back from the partition's folder."""
    table = pq.read_table(io.BytesIO(storage.read_bytes(partition_uri(root, product, run_date))))
    return table.add_column(SCHEMA.get_field_index("product"), SCHEMA.field("product"),
                            pa.array([product] * table.num_rows, pa.string()))


def read_partition_manifests(storage: st.Storage, root: str, product: str,
                             run_date: date) -> tuple[pa.Table, dict[str, dict]]:
    """A date's rows (schema metadata dropped) and the manifests it carries, by run_id."""
    table = read_partition(storage, root, product, run_date)
    raw = (table.schema.metadata or {}).get(MANIFESTS_KEY)
    manifests = json.loads(raw) if raw else {}
    return table.replace_schema_metadata(None), manifests
