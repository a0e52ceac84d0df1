"""Snapshots of a range -> transform input shards + skip report, in one streaming pass."""

from __future__ import annotations

import tempfile
from datetime import datetime, timedelta
from typing import Any

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from velibcast import constants as C
from velibcast import storage as st
from velibcast.datasets.csv_tokens import packed, token_matrix
from velibcast.datasets.jsonio import loads
from velibcast.datasets.records import ShardWriter, layout_for, record_id_parts
from velibcast.datasets.report import SkipReport, ValidationPolicy
from velibcast.datasets.windows import WindowBatch, WindowSummary, iter_window_batches
from velibcast.errors import DataError
from velibcast.timeutil import iso_minute, iso_second


def load_station_index(storage: st.Storage, uri: str | None) -> dict[str, int]:
    """The model's station_mappings.json ({"station_index": {code: i}}) or a flat {code: i}."""
    if not uri:
        return {}
    doc = loads(storage.read_bytes(uri))
    index = doc.get("station_index", doc) if isinstance(doc, dict) else None
    if not isinstance(index, dict) or not all(isinstance(v, int) for v in index.values()):
        raise DataError(uri, "not a station mapping", 'expected {"station_index": {"16107": 1, ...}}')
    return {str(k): int(v) for k, v in index.items()}


def report_uri_for(out_prefix: str) -> str:
    """Beside the shards, never under their prefix (Batch Transform would send it as input)."""
    parent, _, name = out_prefix.rstrip("/").rpartition("/")
    return st.join(parent, f"windows-report-{name}.json") if parent else f"windows-report-{name}.json"


INDEX_SCHEMA = pa.schema([
    ("record_id", pa.string()),
    ("station_code", pa.string()),
    ("origin_ts", pa.timestamp("us", tz="UTC")),
    ("capacity", pa.int32()),
    ("unknown_station", pa.bool_()),
])


def index_rows(batch: WindowBatch) -> pa.RecordBatch:
    """The record index rows of a batch: what the join needs to turn a prediction back into a forecast.

    Arrays are built from their buffers: pa.array() imports pandas on its first call, 0.25 s of
    a fresh `velibcast windows` process (half the real nightly's assembly).
    """
    n = len(batch)
    return pa.record_batch([
        _strings(np.concatenate(record_id_parts(batch), axis=1)),
        _strings(token_matrix(batch.code_bytes)),
        _from_buffer(pa.timestamp("us", tz="UTC"), n, np.full(n, int(batch.origin_ts.timestamp() * 1_000_000), np.int64)),
        _from_buffer(pa.int32(), n, batch.capacity.astype(np.int32)),
        _from_buffer(pa.bool_(), n, np.packbits(batch.unknown_station, bitorder="little")),  # Arrow's bit order
    ], schema=INDEX_SCHEMA)


def _strings(rows: np.ndarray) -> pa.Array:
    """NUL-padded UTF-8 rows (uint8 matrix) -> a string array. Codes hold no NUL (check_batch).

    From the bytes the CSV shards are written from, not a Python string per record: 0.31 ->
    0.1 ms for a 1,200-record batch."""
    offsets = np.zeros(len(rows) + 1, dtype=np.int32)
    np.cumsum(np.count_nonzero(rows, axis=1), out=offsets[1:])
    return pa.StringArray.from_buffers(len(rows), pa.py_buffer(offsets), pa.py_buffer(packed(rows)))


def _from_buffer(type_: pa.DataType, n: int, data: np.ndarray) -> pa.Array:
    return pa.Array.from_buffers(type_, n, [None, pa.py_buffer(np.ascontiguousarray(data))])


class _IndexWriter:
    """Record index batches -> Parquet row groups of about INDEX_ROW_GROUP_ROWS rows.

    A row group per origin was 24 groups of ~1,200 rows on the real nightly: 0.011 s of writes
    and a file readers scan in 24 pieces. Buffering holds at most one group: twice 1 << 16 rows
    (at 100,000 stations an origin fills a group by itself; two a group cost +5..20 MB of peak).
    """

    def __init__(self, sink):
        # record_id is unique a row: a dictionary for it is built, overflows and is dropped (28,068
        # nightly rows: 5.0 -> 3.2 ms to write, 229 -> 177 KB)
        self.writer = pq.ParquetWriter(sink, INDEX_SCHEMA, use_dictionary=["station_code", "origin_ts", "capacity"])
        self.pending: list[pa.RecordBatch] = []
        self.rows = 0

    def add(self, rows: pa.RecordBatch) -> None:
        self.pending.append(rows)
        self.rows += rows.num_rows
        if self.rows >= C.INDEX_ROW_GROUP_ROWS:
            self._flush()

    def _flush(self) -> None:
        if self.pending:
            self.writer.write_table(pa.Table.from_batches(self.pending, INDEX_SCHEMA),
                                    row_group_size=max(self.rows, 1))
        self.pending, self.rows = [], 0

    def close(self) -> None:
        self._flush()
        self.writer.close()

    def abandon(self) -> None:
        """Close the Parquet writer while its file is open, on any path: left to the garbage
        collector after a failed run, it wrote its footer to the closed temporary file."""
        if self.writer.is_open:
            self.writer.close()


class Assembly(msgspec.Struct, frozen=True, kw_only=True):
    """What the window stage built, as its callers (the nightly flow's windows stage, the `windows`
    CLI, the benches) read it; also written as JSON to `report_uri`, beside the shards."""

    snapshots_root: str
    first_origin: str | None             # ISO minute
    last_origin: str | None
    max_staleness_hours: float
    as_of: str | None                    # ISO second: no capture taken after it was read
    summary: dict[str, Any]              # WindowSummary.to_dict(): windows, open stations, by origin
    report: dict[str, Any]               # SkipReport.to_dict(): counts, by kind, examples
    layout: dict[str, Any]               # the transform input layout (records.layout_for)
    shards: list[str]                    # the input objects written, in order
    manifest_file: str | None            # a ManifestFile S3DataSource's manifest, when asked for
    index_uri: str | None                # the record index (Parquet), when asked for
    data_quality: dict[str, Any] | None  # the first observer's summary (datasets.quality.QualityTracker)
    report_uri: str


def assemble_transform_inputs(
    storage: st.Storage,
    snapshots_root: str,
    origins: list[datetime],
    out_prefix: str,
    fmt: str = "csv",
    station_index: dict[str, int] | None = None,
    max_staleness: timedelta = timedelta(hours=C.MAX_STALENESS_HOURS),
    policy: ValidationPolicy | None = None,
    max_shard_bytes: int = C.TRANSFORM_SHARD_MAX_BYTES,
    shard_count: int = C.TRANSFORM_SHARD_COUNT,
    manifest_uri: str | None = None,
    report_uri: str | None = None,
    index_uri: str | None = None,
    observers=(),
    chunk_hours: int = C.WINDOW_CHUNK_HOURS,
    as_of: datetime | None = None,
    states_root: str | None = None,
) -> Assembly:
    """The one window path: snapshots -> hourly states -> windows -> shards (+ record index), streaming.

    The nightly flow, the `windows` CLI and the bench call this; nothing else builds windows.
    Shards are written as they fill; with index_uri, the record index (one row per record
    sent: record_id, station_code, origin_ts, capacity, unknown_station) is written as Parquet.
    With as_of, no capture taken after it is read (a forecast issued then could not have seen it).
    With states_root, the hours the stored hourly states settle are read from them (iter_state_grids).
    """
    report = SkipReport()
    summary = WindowSummary()
    writer = ShardWriter(storage, out_prefix, fmt, max_shard_bytes, shard_count)
    # The index grows in a local temporary file, read back once the grids are gone: in memory it
    # was ~30 MB of the 100,000-station peak.
    with tempfile.TemporaryFile() as index_buf:
        index = _IndexWriter(index_buf) if index_uri else None
        try:
            for batch in iter_window_batches(storage, snapshots_root, origins, station_index or {}, report,
                                             max_staleness, policy, summary, observers, chunk_hours, as_of,
                                             states_root):
                writer.add(batch)
                if index is not None:
                    index.add(index_rows(batch))
            writer.flush()  # the last shards are written while the index is finished
            if index is not None and index_uri:  # an index is written exactly when index_uri is given
                index.close()
                index_buf.seek(0)
                storage.write_bytes(index_uri, index_buf.read(), content_type="application/vnd.apache.parquet")
            shards = writer.close(manifest_uri)
        finally:
            writer.abandon()
            if index is not None:
                index.abandon()
    report_uri = report_uri or report_uri_for(out_prefix)
    quality = next((obs.to_dict() for obs in observers if hasattr(obs, "to_dict")), None)
    result = Assembly(
        snapshots_root=snapshots_root,
        first_origin=iso_minute(min(origins)) if origins else None,
        last_origin=iso_minute(max(origins)) if origins else None,
        max_staleness_hours=max_staleness.total_seconds() / 3600,
        as_of=iso_second(as_of) if as_of is not None else None,
        summary=summary.to_dict(),
        report=report.to_dict(),
        layout=layout_for(fmt).to_dict(),
        shards=shards,
        manifest_file=manifest_uri,
        index_uri=index_uri,
        data_quality=quality,
        report_uri=report_uri,
    )
    storage.write_bytes(report_uri, msgspec.json.encode(result), content_type="application/json")
    return result
