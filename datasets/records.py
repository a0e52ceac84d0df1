"""Transform inputs: windows as CSV or JSON Lines shards, and the layout the job uses.

The ordered column list is the single source of the filters: InputFilter drops exactly
the columns before the model's features, OutputFilter keeps the record id and the model's
outputs from the joined line. Neither is typed by hand, so reordering columns cannot
silently feed the model the wrong values.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass

from velibcast import constants as C
from velibcast import storage as st
from velibcast.datasets.jsonio import dumps_bytes, loads
from velibcast.errors import DataError
from velibcast.transform_code.velib_features import (
    FEATURE_COLUMNS, HISTORY_KEY, OUTPUT_COLUMNS, STATIC_FEATURES,
)

CSV = "csv"
JSONL = "jsonl"
FEATURES_KEY = "features"
SAGEMAKER_OUTPUT_KEY = "SageMakerOutput"   # where a JSON join puts the model's output (API_DataProcessing)


@dataclass(frozen=True)
class TransformLayout:
    columns: list[str]
    content_type: str
    input_filter: str
    output_filter: str
    output_columns: list[str]
    split_type: str = "Line"
    join_source: str = "Input"

    def to_dict(self) -> dict:
        return asdict(self)


def csv_layout(columns: list[str] | None = None) -> TransformLayout:
    """CSV rows are JSON arrays to the filters: keep the features slice, then id + outputs."""
    columns = list(columns or [C.RECORD_ID_COLUMN, *FEATURE_COLUMNS])
    first = columns.index(FEATURE_COLUMNS[0])
    if columns[first:] != FEATURE_COLUMNS:
        raise ValueError(f"CSV columns must end with the model's features in order; got {columns}")
    id_pos = columns.index(C.RECORD_ID_COLUMN)
    # A CSV join appends the output columns after the input row.
    return TransformLayout(
        columns=columns,
        content_type="text/csv",
        input_filter=f"$[{first}:]",
        output_filter=f"$[{id_pos},-{len(OUTPUT_COLUMNS)}:]",
        output_columns=[C.RECORD_ID_COLUMN, *OUTPUT_COLUMNS],
    )


JSONL_KEYS = [C.RECORD_ID_COLUMN, "station_code", "origin_ts", FEATURES_KEY]
JSONL_FEATURE_KEYS = [HISTORY_KEY, *STATIC_FEATURES]


def jsonl_layout() -> TransformLayout:
    return TransformLayout(
        columns=list(JSONL_KEYS),
        content_type="application/jsonlines",
        input_filter=f"$.{FEATURES_KEY}",
        output_filter=f"$['{C.RECORD_ID_COLUMN}','{SAGEMAKER_OUTPUT_KEY}']",
        output_columns=[C.RECORD_ID_COLUMN, *OUTPUT_COLUMNS],
    )


def layout_for(fmt: str) -> TransformLayout:
    if fmt == CSV:
        return csv_layout()
    if fmt == JSONL:
        return jsonl_layout()
    raise ValueError(f"transform input format {fmt!r}: use 'csv' or 'jsonl'")


def csv_line(w) -> bytes:
    # No header: Batch Transform would send it to the model as a record.
    return (w.record_id + "," + ",".join(map(repr, w.features())) + "\n").encode()


def jsonl_line(w) -> bytes:
    f = {HISTORY_KEY: w.history, "hour": w.hour, "day_of_week": w.day_of_week, "is_weekend": w.is_weekend,
         "capacity": w.capacity, "station_index": w.station_index, "lat": w.lat, "lon": w.lon}
    return dumps_bytes({C.RECORD_ID_COLUMN: w.record_id, "station_code": w.station_code,
                        "origin_ts": f"{w.origin_ts:%Y-%m-%dT%H:%M:%SZ}", FEATURES_KEY: f}) + b"\n"


def write_transform_inputs(
    storage: st.Storage,
    windows: Iterable,
    out_prefix: str,
    fmt: str = CSV,
    max_shard_bytes: int = C.TRANSFORM_SHARD_MAX_BYTES,
    shard_count: int = C.TRANSFORM_SHARD_COUNT,
    manifest_uri: str | None = None,
) -> list[str]:
    """Write windows as shards of at most max_shard_bytes under out_prefix; return their URIs.

    Lines are dealt round-robin to `shard_count` open shards (instance_count x
    MaxConcurrentTransforms), so small inputs still spread over every worker; a shard that
    would pass max_shard_bytes is closed and a new one opened. Memory holds at most
    shard_count shards. With manifest_uri, a ManifestFile listing the shards is written too.
    """
    encode = {CSV: csv_line, JSONL: jsonl_line}.get(fmt)
    if encode is None:
        raise ValueError(f"transform input format {fmt!r}: use 'csv' or 'jsonl'")
    ext = {CSV: "csv", JSONL: "jsonl"}[fmt]
    shard_count = max(1, int(shard_count))
    bufs: list[list[bytes]] = [[] for _ in range(shard_count)]
    sizes = [0] * shard_count
    uris: list[str] = []

    def flush(k: int) -> None:
        if not bufs[k]:
            return
        uri = st.join(out_prefix, f"part-{len(uris):05d}.{ext}")
        storage.write_bytes(uri, b"".join(bufs[k]), content_type=layout_for(fmt).content_type)
        uris.append(uri)
        bufs[k], sizes[k] = [], 0

    for n, w in enumerate(windows):
        line = encode(w)
        if len(line) > max_shard_bytes:
            raise DataError(w.record_id, f"one record is {len(line)} bytes > max_shard_bytes {max_shard_bytes}",
                            "raise max_shard_bytes")
        k = n % shard_count
        if sizes[k] + len(line) > max_shard_bytes:
            flush(k)
        bufs[k].append(line)
        sizes[k] += len(line)
    for k in range(shard_count):
        flush(k)
    if manifest_uri:
        write_manifest_file(storage, manifest_uri, out_prefix, uris)
    return uris


def write_manifest_file(storage: st.Storage, manifest_uri: str, out_prefix: str, uris: list[str]) -> None:
    """SageMaker ManifestFile: [{"prefix": ...}, "relative/key", ...]."""
    prefix = out_prefix.rstrip("/") + "/"
    rel = [u[len(prefix):] for u in uris]
    storage.write_bytes(manifest_uri, dumps_bytes([{"prefix": prefix}, *rel]), content_type="application/json")


def shard_count_for(instance_count: int, max_concurrent_transforms: int) -> int:
    return max(1, int(instance_count) * max(1, int(max_concurrent_transforms)))


# ---------------------------------------------------------------- reading outputs back
def _ints(values, where: str) -> list[int]:
    if len(values) != len(OUTPUT_COLUMNS):
        raise DataError(where, f"expected {len(OUTPUT_COLUMNS)} outputs {OUTPUT_COLUMNS}, got {values!r}",
                        "check the model's output_fn and the OutputFilter")
    out = []
    for v in values:
        try:
            f = float(v)
        except (TypeError, ValueError):
            raise DataError(where, f"output value {v!r} is not a number", "check the model's output_fn") from None
        if not math.isfinite(f) or f != int(f):
            raise DataError(where, f"output value {v!r} is not an integer", "the model must output whole bikes")
        out.append(int(f))
    return out


def parse_output_line(line: str, fmt: str, where: str) -> tuple[str, list[int]]:
    """One `.out` line after the OutputFilter: record_id + 3 ints."""
    if fmt == CSV:
        parts = line.rstrip("\r\n").split(",")
        return parts[0], _ints(parts[1:], where)
    if fmt == JSONL:
        try:
            d = loads(line)
        except ValueError as e:
            raise DataError(where, f"output line is not JSON ({e})", "check AssembleWith=Line and the OutputFilter") from None
        rid, out = d.get(C.RECORD_ID_COLUMN), d.get(SAGEMAKER_OUTPUT_KEY)
        if isinstance(out, str):
            out = out.strip().split(",")
        elif isinstance(out, dict):
            out = [out.get(c) for c in OUTPUT_COLUMNS]
        elif isinstance(out, list) and len(out) == 1 and isinstance(out[0], list):
            out = out[0]
        if not isinstance(rid, str) or not isinstance(out, list):
            raise DataError(where, f"expected {{{C.RECORD_ID_COLUMN!r}: str, {SAGEMAKER_OUTPUT_KEY!r}: [...]}}, got {line[:200]!r}",
                            "check the OutputFilter")
        return rid, _ints(out, where)
    raise ValueError(f"transform input format {fmt!r}: use 'csv' or 'jsonl'")


def parse_output(data: bytes, fmt: str, where: str) -> list[tuple[str, list[int]]]:
    """Every line of one `.out` object; blank lines (a trailing newline) are not records."""
    return [parse_output_line(line, fmt, f"{where} line {n}")
            for n, line in enumerate(data.decode("utf-8").split("\n"), 1) if line.strip()]
