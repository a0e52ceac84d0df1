"""Transform inputs: windows as CSV or JSON Lines shards, and the layout the job uses.

The ordered column list is the single source of the filters: InputFilter drops exactly
the columns before the model's features, OutputFilter keeps the record id and the model's
outputs from the joined line. Neither is typed by hand, so reordering columns cannot
silently feed the model the wrong values.
"""

from __future__ import annotations

import re
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass

import numpy as np

from velibcast import constants as C
from velibcast import storage as st
from velibcast.datasets.csv_tokens import float_tokens, int_tokens, join_rows, token_matrix
from velibcast.datasets.jsonio import dumps_bytes, loads
from velibcast.errors import ConfigError, DataError
from velibcast.timeutil import iso_second
from velibcast.transform_code.velib_features import (
    FEATURE_COLUMNS,
    HISTORY_COLUMNS,
    HISTORY_KEY,
    OUTPUT_COLUMNS,
    STATIC_FEATURES,
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
        raise ConfigError(f"CSV columns must end with the model's features in order; got {columns}")
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
    raise ConfigError(f"transform input format {fmt!r}: use 'csv' or 'jsonl'")


# ---------------------------------------------------------------- encoding window batches
def record_id_parts(batch, end: str = "") -> list[np.ndarray]:
    """The batch's record ids (`<code>@<origin>` + end) as token matrices side by side, NUL-padded,
    for the CSV shards and the record index alike. Not numpy.char: its first import was 1.5 ms
    of a fresh process's assembly."""
    suffix = np.frombuffer(("@" + batch.origin_label + end).encode(), dtype=np.uint8)
    return [token_matrix(batch.code_bytes), np.broadcast_to(suffix, (len(batch), len(suffix)))]


def csv_rows(batch) -> bytes:
    """The batch's CSV lines (no header: Batch Transform would send it to the model as a record)."""
    n = len(batch)
    if not n:
        return b""
    parts = [*record_id_parts(batch, ","), token_matrix(int_tokens(batch.history.reshape(-1)).reshape(n, -1))]
    for name in STATIC_FEATURES:
        if name in batch.float_text:
            parts.append(token_matrix(batch.float_text[name]))
            continue
        col = batch.static_column(name)
        parts.append(token_matrix(float_tokens(col) if col.dtype.kind == "f" else int_tokens(col)))
    return join_rows(parts)


def jsonl_rows(batch) -> bytes:
    ts = f"{iso_second(batch.origin_ts)}"
    out = []
    for rid, code, row in zip(batch.record_ids(), batch.station_codes.tolist(), batch.feature_rows()):
        f = {HISTORY_KEY: row[:len(HISTORY_COLUMNS)],
             **dict(zip(STATIC_FEATURES, row[len(HISTORY_COLUMNS):]))}
        out.append(dumps_bytes({C.RECORD_ID_COLUMN: rid, "station_code": code, "origin_ts": ts, FEATURES_KEY: f}))
    return b"\n".join(out) + b"\n" if out else b""


_ENCODERS = {CSV: csv_rows, JSONL: jsonl_rows}
_CODE_RE = re.compile(C.STATION_CODE_PATTERN)
_BOUNDS = {"capacity": (0, C.STATION_CAPACITY_MAX), "lat": C.SERVICE_AREA_LAT, "lon": C.SERVICE_AREA_LON}


def check_batch(batch) -> None:
    """The invariant behind "one notion of a valid record": nothing the model server would
    answer 400 to reaches a shard. Snapshot validation rejects such records first, so this
    raising is a bug upstream, reported by record id instead of as a failed transform job."""
    if not len(batch):
        return
    problems = []
    # Each column is first checked by its range (NaN fails it), and only a failing one is searched
    # row by row: the per-row masks were half of this check's 0.012 s on the real nightly.
    for name, (lo, hi) in _BOUNDS.items():
        col = batch.static_column(name)
        if lo <= col.min() and col.max() <= hi:
            continue
        bad = np.flatnonzero(~((col >= lo) & (col <= hi)))  # NaN fails both
        problems.append((int(bad[0]), f"{name} {col[bad[0]].item()!r} outside [{lo}, {hi}]"))
    hist = batch.history
    if not (0 <= hist.min() and hist.max() <= C.STATION_COUNT_MAX):
        bad = np.flatnonzero((hist < 0).any(axis=1) | (hist > C.STATION_COUNT_MAX).any(axis=1))
        problems.append((int(bad[0]), f"a history value outside [0, {C.STATION_COUNT_MAX}]"))
    codes = batch.station_codes
    suspect = _suspect_codes(batch.code_bytes).tolist()  # UTF-8: a byte outside ASCII is suspect
    bad_codes = [i for i in suspect if not _CODE_RE.fullmatch(codes[i])]
    if bad_codes:
        problems.append((bad_codes[0], f"station code {codes[bad_codes[0]]!r} is not {C.STATION_CODE_PATTERN}"))
    if problems:
        i, what = min(problems)
        raise DataError(batch.record_ids()[i], f"{what}; the model server would refuse the whole shard",
                        "a bug: snapshot validation (datasets/snapshots.py) must reject this record; report it")


_CODE_CHARS = np.zeros(256, dtype=bool)  # the bytes STATION_CODE_PATTERN allows, and NUL (numpy's padding)
_CODE_CHARS[[0, *b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_-"]] = True
_CODE_LEN = re.fullmatch(r"\[.*\]\{1,(\d+)\}", C.STATION_CODE_PATTERN)


def _suspect_codes(code_bytes: np.ndarray) -> np.ndarray:
    """Rows whose code may not match STATION_CODE_PATTERN, by a byte table (the regex, one call
    per window, was 0.03 s of the real nightly's assembly); the regex then decides on these."""
    if not len(code_bytes):
        return np.empty(0, dtype=np.int64)
    m = np.ascontiguousarray(code_bytes).view(np.uint8).reshape(len(code_bytes), -1)
    lengths = np.count_nonzero(m, axis=1)
    ends = m.shape[1] - np.argmax(m[:, ::-1] != 0, axis=1)  # past the last non-NUL byte
    inner_nul = (lengths > 0) & (lengths != ends)  # a NUL inside the code, not padding
    too_long = lengths > int(_CODE_LEN.group(1)) if _CODE_LEN else np.ones(len(m), dtype=bool)
    return np.flatnonzero(~_CODE_CHARS[m].all(axis=1) | (lengths == 0) | inner_nul | too_long)


class ShardWriter:
    """Window batches -> shards of at most max_shard_bytes under out_prefix, written as they fill.

    Records are dealt round-robin to `shard_count` open shards (instance_count x
    MaxConcurrentTransforms), so small inputs still spread over every worker; a shard that
    would pass max_shard_bytes is written and a new one opened. Each batch is encoded once,
    then split on line boundaries.

    A full shard is written by a background thread while the next batches are encoded
    (SHARD_WRITES_IN_FLIGHT at most, so memory holds shard_count open shards plus those): a
    write releases the GIL for its I/O, and a PUT to S3 waits on the network, so shards
    written one after another stalled the encoding once per shard (63 shards at 100,000
    stations). On the real nightly's one local shard (write and fsync, 7 ms, now beside the
    record index) no change is measurable. A failed write raises from the next add or close.
    Call close, or abandon on a failed run.
    """

    def __init__(self, storage: st.Storage, out_prefix: str, fmt: str = CSV,
                 max_shard_bytes: int = C.TRANSFORM_SHARD_MAX_BYTES, shard_count: int = C.TRANSFORM_SHARD_COUNT):
        if fmt not in _ENCODERS:
            raise ConfigError(f"transform input format {fmt!r}: use 'csv' or 'jsonl'")
        self.storage, self.out_prefix, self.fmt = storage, out_prefix, fmt
        self.max_shard_bytes = int(max_shard_bytes)
        self.shard_count = max(1, int(shard_count))
        self.content_type = layout_for(fmt).content_type
        self.bufs: list[list[bytes]] = [[] for _ in range(self.shard_count)]
        self.sizes = [0] * self.shard_count
        self.records = 0
        self.uris: list[str] = []
        self._writes = ThreadPoolExecutor(max_workers=C.SHARD_WRITES_IN_FLIGHT, thread_name_prefix="shard-write")
        self._pending: deque[Future] = deque()

    def _flush(self, k: int) -> None:
        if not self.bufs[k]:
            return
        uri = st.join(self.out_prefix, f"part-{len(self.uris):05d}.{self.fmt}")
        while len(self._pending) >= C.SHARD_WRITES_IN_FLIGHT:
            self._pending.popleft().result()  # a failed write raises here
        self._pending.append(self._writes.submit(self.storage.write_bytes, uri, b"".join(self.bufs[k]),
                                                 content_type=self.content_type))
        self.uris.append(uri)
        self.bufs[k], self.sizes[k] = [], 0

    def add(self, batch) -> None:
        n = len(batch)
        if not n:
            return
        check_batch(batch)
        data = _ENCODERS[self.fmt](batch)
        ends = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 10) + 1
        starts = np.concatenate([[0], ends[:-1]])
        lengths = ends - starts
        big = np.flatnonzero(lengths > self.max_shard_bytes)
        if len(big):
            raise DataError(batch.record_ids()[big[0]], f"one record is {int(lengths[big[0]])} bytes > "
                            f"max_shard_bytes {self.max_shard_bytes}", "raise max_shard_bytes")
        view = memoryview(data)
        first = self.records % self.shard_count
        for k in range(self.shard_count):
            rows = np.arange((k - first) % self.shard_count, n, self.shard_count)
            if not len(rows):
                continue
            if self.shard_count == 1:
                self._append(k, data, lengths)
                continue
            self._append(k, b"".join(view[s:e] for s, e in zip(starts[rows].tolist(), ends[rows].tolist())),
                         lengths[rows])
        self.records += n

    def _append(self, k: int, data: bytes, lengths: np.ndarray) -> None:
        """Whole lines into shard k, writing it and opening the next where max_shard_bytes would be passed."""
        ends = np.cumsum(lengths)
        done = 0
        while done < len(ends):
            pos = int(ends[done - 1]) if done else 0
            upto = int(np.searchsorted(ends, pos + self.max_shard_bytes - self.sizes[k], side="right"))
            if upto == done:
                self._flush(k)
                continue
            end = int(ends[upto - 1])
            self.bufs[k].append(data[pos:end])
            self.sizes[k] += end - pos
            done = upto

    def flush(self) -> None:
        """Start writing every open shard; close waits for them."""
        for k in range(self.shard_count):
            self._flush(k)

    def close(self, manifest_uri: str | None = None) -> list[str]:
        """Write the open shards, wait for every write (raising the first that failed), then the manifest."""
        self.flush()
        try:
            while self._pending:
                self._pending.popleft().result()
        finally:
            self.abandon()
        if manifest_uri:
            write_manifest_file(self.storage, manifest_uri, self.out_prefix, self.uris)
        return self.uris

    def abandon(self) -> None:
        """Stop the write thread after the writes already started; nothing more is written."""
        for fut in self._pending:
            fut.cancel()
        self._writes.shutdown(wait=True)


def write_manifest_file(storage: st.Storage, manifest_uri: str, out_prefix: str, uris: list[str]) -> None:
    """SageMaker ManifestFile: [{"prefix": ...}, "relative/key", ...]."""
    prefix = out_prefix.rstrip("/") + "/"
    rel = [u[len(prefix):] for u in uris]
    storage.write_bytes(manifest_uri, dumps_bytes([{"prefix": prefix}, *rel]), content_type="application/json")


def shard_count_for(instance_count: int, max_concurrent_transforms: int) -> int:
    return max(1, int(instance_count) * max(1, int(max_concurrent_transforms)))


# ---------------------------------------------------------------- reading outputs back
def _numbers(values, where: str) -> list[float]:
    """The output values as numbers. Whether they are possible (one per OUTPUT_COLUMNS, whole bikes
    within the station's capacity, probabilities in [0, 1], quantiles in order) is checked by the
    join, which knows the record's station and names it (flows/forecasts.check_prediction_values)."""
    out = []
    for v in values:
        try:
            out.append(float(v))
        except (TypeError, ValueError, OverflowError):  # OverflowError: a JSON integer no float holds
            raise DataError(where, f"output value {v!r} is not a number", "check the model's output_fn") from None
    return out


def parse_output_line(line: str, fmt: str, where: str) -> tuple[str, list[float]]:
    """One `.out` line after the OutputFilter: record_id and its values (OUTPUT_COLUMNS)."""
    if fmt == CSV:
        parts = line.rstrip("\r\n").split(",")
        return parts[0], _numbers(parts[1:], where)
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
        return rid, _numbers(out, where)
    raise ConfigError(f"transform input format {fmt!r}: use 'csv' or 'jsonl'")


def output_lines(data: bytes, where: str) -> list[tuple[int, str]]:
    """(line number, text) of one `.out` object's records; blank lines (a trailing newline) are not
    records, and a byte that is not UTF-8 is a DataError naming its line."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise DataError(f"{where} line {line}", f"byte {e.start} is not UTF-8",
                        "check the model's output_fn encoding") from None
    return [(n, line) for n, line in enumerate(text.split("\n"), 1) if line.strip()]
