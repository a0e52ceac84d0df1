"""Join Batch Transform outputs back to their windows and publish the forecast table.

The forecast dataset is Hive-partitioned by `run_date` with exactly one object per
partition, `forecasts/run_date=YYYY-MM-DD/part-0.parquet`. Publishing a date is one
whole-object PUT (or an atomic rename locally), so readers see the previous night or the
new one, never half of one and never both.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import date, timedelta

import pyarrow as pa
import pyarrow.parquet as pq

from velibcast import storage as st
from velibcast.datasets.records import parse_output_line
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


def join_predictions(sent: dict[str, SentRecord], outputs: list[tuple[str, bytes]], fmt: str,
                     model_version: str, run_id: str) -> pa.Table:
    """Exactly one prediction per sent record, or a DataError naming what is off."""
    seen: dict[str, tuple[str, int]] = {}
    cols: dict[str, list] = {f.name: [] for f in SCHEMA}
    for uri, body in outputs:
        lines = ((n, text) for n, text in enumerate(body.decode("utf-8").split("\n"), 1) if text.strip())
        for line, text in lines:
            record_id, preds = parse_output_line(text, fmt, f"{uri} line {line}")
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
