"""Join Batch Transform outputs back to their windows and publish the forecast table.

The forecast dataset is Hive-partitioned by `run_date` with exactly one object per
partition, `forecasts/run_date=YYYY-MM-DD/part-0.parquet`. Publishing a date is one
whole-object PUT (or an atomic rename locally), so readers see the previous night or the
new one, never half of one and never both.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from datetime import date, timedelta

import pyarrow as pa
import pyarrow.parquet as pq

from velibcast import storage as st
from velibcast.errors import DataError

HORIZONS = (1, 2, 3)
PART_NAME = "part-0.parquet"

SCHEMA = pa.schema([
    pa.field("station_code", pa.string(), nullable=False),
    pa.field("origin_ts", pa.timestamp("us", tz="UTC"), nullable=False),
    pa.field("horizon_h", pa.int8(), nullable=False),
    pa.field("target_ts", pa.timestamp("us", tz="UTC"), nullable=False),
    pa.field("bikes_pred", pa.int32(), nullable=False),
    pa.field("capacity", pa.int32(), nullable=False),
    pa.field("unknown_station", pa.bool_(), nullable=False),
    pa.field("model_version", pa.string(), nullable=False),
    pa.field("run_id", pa.string(), nullable=False),
])


@dataclass(frozen=True)
class SentRecord:
    """What the join needs to know about one record sent to the transform."""

    station_code: str
    origin_ts: object  # datetime, UTC
    capacity: int
    unknown_station: bool


def parse_out_object(uri: str, body: bytes, fmt: str) -> list[tuple[str, list[int], int]]:
    """Rows (record_id, [h1, h2, h3], line number) of one `.out` object.

    csv: each line is `record_id,h1,h2,h3` (OutputFilter `$[0,-3:]`).
    jsonl: each line is an object with `record_id` and `SageMakerOutput` (a list of three,
    or an object whose values are the three horizons in order).
    """
    rows = []
    text = body.decode("utf-8")
    if fmt == "csv":
        for n, rec in enumerate(csv.reader(io.StringIO(text)), start=1):
            if not rec:
                continue
            if len(rec) != 1 + len(HORIZONS):
                raise DataError(f"{uri} line {n}", f"expected record_id and {len(HORIZONS)} predictions, got {len(rec)} fields",
                                "check the job's OutputFilter ($[0,-3:]) and the model's output columns")
            rows.append((rec[0], [_as_int(v, uri, n) for v in rec[1:]], n))
        return rows
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            out = obj["SageMakerOutput"]
            values = list(out.values()) if isinstance(out, dict) else list(out)
            rows.append((str(obj["record_id"]), [_as_int(v, uri, n) for v in values[: len(HORIZONS)]], n))
        except (ValueError, KeyError, TypeError) as e:
            raise DataError(f"{uri} line {n}", f"unreadable JSON Lines output ({e})",
                            "check the job's OutputFilter ($['record_id','SageMakerOutput'])") from e
    return rows


def _as_int(v, uri: str, n: int) -> int:
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise DataError(f"{uri} line {n}", f"prediction {v!r} is not a number") from None
    if f != int(f):
        raise DataError(f"{uri} line {n}", f"prediction {v!r} is not an integer")
    return int(f)


def join_predictions(sent: dict[str, SentRecord], outputs: list[tuple[str, bytes]], fmt: str,
                     model_version: str, run_id: str) -> pa.Table:
    """Exactly one prediction per sent record, or a DataError naming what is off."""
    seen: dict[str, tuple[str, int]] = {}
    cols: dict[str, list] = {f.name: [] for f in SCHEMA}
    for uri, body in outputs:
        for record_id, preds, line in parse_out_object(uri, body, fmt):
            if record_id not in sent:
                raise DataError(f"{uri} line {line}", f"record_id {record_id!r} was never sent",
                                "the output prefix holds objects of another run; clear it and rerun")
            if record_id in seen:
                first = seen[record_id]
                raise DataError(f"{uri} line {line}", f"second prediction for {record_id!r} (first at {first[0]} line {first[1]})",
                                "the input prefix holds a shard twice; clear the run's transform folder and rerun")
            seen[record_id] = (uri, line)
            rec = sent[record_id]
            for h, value in zip(HORIZONS, preds):
                cols["station_code"].append(rec.station_code)
                cols["origin_ts"].append(rec.origin_ts)
                cols["horizon_h"].append(h)
                cols["target_ts"].append(rec.origin_ts + timedelta(hours=h))
                cols["bikes_pred"].append(value)
                cols["capacity"].append(rec.capacity)
                cols["unknown_station"].append(rec.unknown_station)
                cols["model_version"].append(model_version)
                cols["run_id"].append(run_id)
    missing = [r for r in sent if r not in seen]
    if missing:
        raise DataError(f"transform output ({len(outputs)} objects)",
                        f"{len(missing)} of {len(sent)} records have no prediction, e.g. {missing[:3]}",
                        "the transform job did not complete every object; see its FailureReason")
    table = pa.table(cols, schema=SCHEMA)
    return table.sort_by([("station_code", "ascending"), ("origin_ts", "ascending"), ("horizon_h", "ascending")])


def partition_uri(root: str, run_date: date) -> str:
    return st.join(root, "forecasts", f"run_date={run_date.isoformat()}", PART_NAME)


def to_parquet_bytes(table: pa.Table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    return buf.getvalue()


def publish(storage: st.Storage, root: str, run_date: date, table: pa.Table) -> str:
    uri = partition_uri(root, run_date)
    storage.write_bytes(uri, to_parquet_bytes(table), content_type="application/vnd.apache.parquet")
    return uri


def read_partition(storage: st.Storage, root: str, run_date: date) -> pa.Table:
    return pq.read_table(io.BytesIO(storage.read_bytes(partition_uri(root, run_date))))
