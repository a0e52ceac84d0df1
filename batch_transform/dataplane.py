"""Batch Transform's data plane as pure functions: bytes of one object in, requests out;
responses in, the `.out` bytes out. No HTTP, no storage (the moto split: engine apart
from the wire). The rules are BTS §2.4-§3.5; where sources disagree or are silent the
choice is a field of DataPlaneSettings, documented there.
"""

from __future__ import annotations

import json
import re
import typing
import uuid
from dataclasses import dataclass, field
from typing import Literal

from velibcast import constants as C
from velibcast.batch_transform import jsonpath
from velibcast.batch_transform.csv_columns import ColumnPicker
from velibcast.errors import ConfigError, DataError

CSV = "text/csv"
JSON = "application/json"
JSONL = "application/jsonlines"
_JSONL_ALIASES = {"application/jsonlines", "application/jsonl", "application/x-jsonlines"}
DATA_PROCESSING_TYPES = (CSV, JSON, JSONL)


@dataclass(frozen=True)
class DataPlaneSettings:
    """Behaviours the sources leave open (BTS §8); each default is the spec's recommendation.

    slice_end_inclusive: `$[1:4]` selects indexes 1..4 (AWS docs, AutoGluon notebooks) when
        True; 1..3 (Jayway, Python) when False.
    json_sort_keys: joined/filtered JSON is written with byte-sorted keys (what captured
        service outputs show) when True; insertion order (input keys, then SageMakerOutput)
        when False. Always compact (no spaces).
    newline_after_response: with AssembleWith=Line and no per-record processing, "always"
        appends "\\n" after every response (SDK local mode); "if_missing" only when the
        response does not already end with one.
    csv_quoting: how joined/filtered CSV fields are written. "minimal" re-encodes every
        field with RFC 4180 minimal quoting (Go encoding/csv rules: quote a field holding
        `,` `"` CR/LF or starting with a space); "verbatim" copies each field's text exactly
        as it appeared in the input line or the container's response.
    record_alignment: "when_joining" checks one output record per input record only when
        records must be paired (JoinSource=Input), as the service must; "always" also checks
        responses without a join (line count). Without a join the service does not pair
        records: an OutputFilter applies to what the container returned (AWS's AutoGluon
        example answers a CSV mini-batch with one `{"class": ...}` document).
    filtered_payload_text: what an InputFilter sends. "source" copies each selected CSV
        field's text and each JSON number's text as they appear in the input (compact JSON,
        input key order); "reencode" writes the selection anew (CSV with csv_quoting, JSON
        through a JSON encoder). Without an InputFilter a record's bytes always pass through.
    slice_past_end: a slice bound outside the row is an "error" like an index (the guide:
        "indexes that aren't within the dimension size ... you get an error"), or "clip"s
        as Jayway JsonPath does.
    multi_range_filters: several slices in one bracket (`$[0:2, 5:]`, listed by the guide):
        "fail_object" accepts the job and fails each object "Invalid JsonPath: ... only single
        range filters are supported" (the service, aws/sagemaker-python-sdk#1112); "refuse"
        refuses the job at create; "apply" evaluates them as the guide describes.
    retry_client_errors: whether InvocationsMaxRetries also retries 4xx answers (the
        service's retry policy by status is unknown); False retries only 5xx, timeouts
        and connection errors.
    """

    slice_end_inclusive: bool = True
    json_sort_keys: bool = True
    newline_after_response: Literal["always", "if_missing"] = "always"
    csv_quoting: Literal["minimal", "verbatim"] = "minimal"
    record_alignment: Literal["when_joining", "always"] = "when_joining"
    retry_client_errors: bool = False
    filtered_payload_text: Literal["source", "reencode"] = "source"
    slice_past_end: Literal["error", "clip"] = "error"
    multi_range_filters: Literal["fail_object", "refuse", "apply"] = "fail_object"

    @classmethod
    def from_dict(cls, d: dict | None) -> DataPlaneSettings:
        d = dict(d or {})
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ConfigError(f"unknown data plane setting(s) {sorted(unknown)}; known: {sorted(cls.__dataclass_fields__)}")
        hints = typing.get_type_hints(cls)
        for name, value in d.items():
            allowed = typing.get_args(hints[name]) if typing.get_origin(hints[name]) is Literal else (True, False)
            if value not in allowed or (allowed == (True, False) and not isinstance(value, bool)):
                raise ConfigError(f"data plane setting {name}={value!r}: expected one of "
                                  f"{', '.join(map(repr, allowed))}")
        return cls(**d)


def media_type(content_type: str | None) -> str:
    """`text/csv; charset=utf-8` -> `text/csv`; JSON Lines aliases -> application/jsonlines."""
    mt = (content_type or "").split(";")[0].strip().lower()
    return JSONL if mt in _JSONL_ALIASES else mt


@dataclass(frozen=True)
class Processing:
    """What the data plane needs from a validated job spec and the resolved batch parameters."""

    content_type: str | None
    accept: str | None
    split_type: str                      # "None" | "Line"
    batch_strategy: str                  # "MultiRecord" | "SingleRecord"
    max_payload_bytes: int               # 0 = no limit (MaxPayloadInMB=0, chunked upload)
    input_filter: jsonpath.JsonPath
    output_filter: jsonpath.JsonPath
    join: bool
    assemble_with: str                   # "None" | "Line"
    settings: DataPlaneSettings = field(default_factory=DataPlaneSettings)
    # DataCaptureConfig.GenerateInferenceId: the job start time (UTC, "%Y-%m-%dT%H:%M:%SZ")
    # stamped with a fresh id on every joined record; None when not asked for.
    inference_time: str | None = None

    @classmethod
    def from_spec(cls, spec: dict, batch_strategy: str, max_payload_mb: int,
                  settings: DataPlaneSettings | None = None, job_start: str | None = None) -> Processing:
        ti, to = spec["TransformInput"], spec.get("TransformOutput", {})
        dp = spec.get("DataProcessing") or {}
        return cls(
            content_type=ti.get("ContentType"),
            accept=to.get("Accept"),
            split_type=ti.get("SplitType") or "None",
            batch_strategy=batch_strategy,
            max_payload_bytes=int(max_payload_mb) * C.MB,
            input_filter=jsonpath.parse(dp.get("InputFilter") or "$"),
            output_filter=jsonpath.parse(dp.get("OutputFilter") or "$"),
            join=(dp.get("JoinSource") or "None") == "Input",
            assemble_with=to.get("AssembleWith") or "None",
            settings=settings or DataPlaneSettings(),
            inference_time=job_start if (spec.get("DataCaptureConfig") or {}).get("GenerateInferenceId") else None,
        )

    @property
    def per_record(self) -> bool:
        """Records must be decoded: a filter or a join is in effect."""
        return self.join or not self.input_filter.is_root or not self.output_filter.is_root

    @property
    def pairs_records(self) -> bool:
        """Output records must match input records one to one: only a join pairs them."""
        return self.join

    @property
    def in_format(self) -> str:
        return media_type(self.content_type)

    @property
    def out_format(self) -> str:
        # A join parses the response in the input's format: a CSV join fails on a JSON
        # answer with "Failed to parse output from the algorithm as CSV" (BTS §3.3).
        return self.in_format if self.join else media_type(self.accept)


@dataclass(frozen=True)
class MiniBatch:
    first_line: int        # 1-based line of the first record in its object
    count: int             # records in this request
    payload: bytes


@dataclass
class PreparedObject:
    """An object split into records and packed into requests, ready to send."""

    name: str
    batches: list[MiniBatch]
    records: list | None   # unfiltered input records kept for the join: decoded, or lines if plain_csv
    plain_csv: bool = False  # records are the lines of an object without quotes (str, split when joined)

    def record(self, i: int):
        """The decoded input record i (0-based)."""
        r = self.records[i] if self.records is not None else None
        return r.split(",") if self.plain_csv and r is not None else r


# ------------------------------------------------------------------ splitting
def split_lines(data: bytes) -> list[bytes]:
    """Records of SplitType=Line: newline-terminated lines, CR of CRLF dropped; a final
    newline does not start an empty record."""
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return [ln[:-1] if ln.endswith(b"\r") else ln for ln in lines]


def _records_of(data: bytes, fmt: str, split_type: str) -> list[bytes]:
    if fmt == JSON and split_type == "None":
        return [data]
    return split_lines(data)


def _line_ends(data: bytes, fmt: str, split_type: str) -> list[bytes]:
    """The terminator of each record `_records_of` returns (b"\n", b"\r\n", or b"" for
    a last line without one), so a SplitType=None body keeps the object's bytes."""
    if fmt == JSON and split_type == "None":
        return [b""]
    ends = []
    for ln in data.split(b"\n")[:-1]:
        ends.append(b"\r\n" if ln.endswith(b"\r") else b"\n")
    if data and not data.endswith(b"\n"):
        ends.append(b"")
    return ends


def prepare(name: str, data: bytes, proc: Processing) -> PreparedObject:
    """Split, filter and pack one object's bytes into requests (BTS §2.4, §3.1 step 1).
    Without an InputFilter every record's bytes pass through; with SplitType=None the one
    request is the object's bytes (filtered records keep their line endings)."""
    if proc.split_type not in ("None", "Line"):
        raise DataError(name, f"SplitType={proc.split_type} is not supported locally",
                        "use SplitType None or Line, or run the job on SageMaker")
    if not proc.per_record:
        if proc.split_type == "None":
            units = [(1, 1, data)]
        else:
            units = [(i, 1, ln + b"\n") for i, ln in enumerate(split_lines(data), 1)]
        return PreparedObject(name, _pack(name, units, proc), None)

    fmt = proc.in_format
    if fmt not in DATA_PROCESSING_TYPES:
        raise DataError(name, f"ContentType {proc.content_type!r} cannot be filtered or joined",
                        f"DataProcessing needs one of {', '.join(DATA_PROCESSING_TYPES)}")
    source_text = proc.settings.filtered_payload_text == "source"
    if fmt == CSV and proc.split_type == "Line" and source_text:
        fast = _prepare_plain_csv(name, data, proc)
        if fast is not None:
            return fast
    raw = _records_of(data, fmt, proc.split_type)
    records, bodies = [], []
    for i, rec in enumerate(raw, 1):
        where = f"{name} line {i}"
        if proc.input_filter.is_root:
            records.append(decode_record(rec, fmt, where))
            bodies.append(rec)
            continue
        decoded = decode_record(rec, fmt, where, numbers_as_text=source_text)
        records.append(_plain(decoded) if fmt != CSV and source_text else decoded)
        picked = filter_record(proc.input_filter, decoded, proc.settings, where)
        bodies.append(encode_source_text(picked, fmt) if source_text else encode_record(picked, fmt, proc.settings))
    if proc.split_type == "None":
        if proc.input_filter.is_root:
            body = data
        else:
            body = b"".join(b + end for b, end in zip(bodies, _line_ends(data, fmt, proc.split_type)))
        units = [(1, len(bodies), body)]
    else:
        units = [(i, 1, b + b"\n") for i, b in enumerate(bodies, 1)]
    return PreparedObject(name, _pack(name, units, proc), records)


def _picker(path: jsonpath.JsonPath, s: DataPlaneSettings) -> ColumnPicker:
    return ColumnPicker(path, slice_end_inclusive=s.slice_end_inclusive, slice_past_end=s.slice_past_end,
                        multi_range=s.multi_range_filters)


def _plain_csv_text(data: bytes) -> str | None:
    """The text of CSV bytes without any quote, else None (quoted fields, or not UTF-8: the
    per-record path decodes them and names the line at fault)."""
    if b'"' in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _plain_lines(text: str) -> list[str]:
    """split_lines on text: a UTF-8 multibyte character holds no LF or CR byte."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [ln[:-1] if ln.endswith("\r") else ln for ln in lines]


def _prepare_plain_csv(name: str, data: bytes, proc: Processing) -> PreparedObject | None:
    """prepare's CSV Line path for an object without quotes: the same records and bodies as
    the per-record path, cut by column positions (csv_columns); None sends the object down
    that path (a quote, not UTF-8, or a filter that fails on some row, which it reports)."""
    text = _plain_csv_text(data)
    if text is None:
        return None
    lines = _plain_lines(text)
    if proc.input_filter.is_root:
        bodies = [ln.encode("utf-8") for ln in lines]
    else:
        cut_for = _picker(proc.input_filter, proc.settings).cut
        bodies = []
        for ln in lines:
            # Cut from the line: the object keeps its lines, no list per record for the cyclic
            # GC to count: with 3,000 rows kept, a full collection of the bench's heap (99 ms)
            # ran inside prepare in 1 of 8 jobs, none in 6 with lines kept.
            cut = cut_for(ln.count(",") + 1)
            if cut is None:
                return None
            bodies.append(cut(ln).encode("utf-8"))
    units = [(i, 1, b + b"\n") for i, b in enumerate(bodies, 1)]
    return PreparedObject(name, _pack(name, units, proc), lines, plain_csv=True)


def _pack(name: str, units: list[tuple[int, int, bytes]], proc: Processing) -> list[MiniBatch]:
    limit = proc.max_payload_bytes
    for line, _count, body in units:
        if limit and len(body) > limit:
            what = "object (SplitType=None)" if proc.split_type == "None" else "record"
            raise DataError(f"{name} line {line}",
                            f"{what} of {len(body)} bytes exceeds MaxPayloadInMB={limit // C.MB} ({limit} bytes)",
                            "raise MaxPayloadInMB (at most 100) or split the input with SplitType=Line")
    if proc.batch_strategy == "SingleRecord" or proc.split_type == "None":
        return [MiniBatch(line, count, body) for line, count, body in units]
    batches: list[MiniBatch] = []
    parts: list[bytes] = []
    size = first = count = 0
    for line, n, body in units:
        if parts and limit and size + len(body) > limit:
            batches.append(MiniBatch(first, count, b"".join(parts)))
            parts, size, count = [], 0, 0
        if not parts:
            first = line
        parts.append(body)
        size += len(body)
        count += n
    if parts:
        batches.append(MiniBatch(first, count, b"".join(parts)))
    return batches


# ------------------------------------------------------------------ assembly
def assemble(obj: PreparedObject, responses: list[bytes], proc: Processing) -> bytes:
    """Join, filter and assemble the responses of one object, in input order (BTS §2.6, §3)."""
    s = proc.settings
    if not proc.per_record:
        out = []
        for b, resp in zip(obj.batches, responses):
            if s.record_alignment == "always" and proc.split_type == "Line":
                _check_count(obj.name, b, len(split_lines(resp)))
            out.append(resp)
            if proc.assemble_with == "Line" and (s.newline_after_response == "always" or not resp.endswith(b"\n")):
                out.append(b"\n")
        return b"".join(out)

    fmt_out = proc.out_format
    if fmt_out not in DATA_PROCESSING_TYPES:
        raise DataError(obj.name, f"Accept {proc.accept!r} cannot be filtered or joined",
                        f"set Accept to one of {', '.join(DATA_PROCESSING_TYPES)}")
    pieces: list[bytes] = []
    sep = b"\n" if proc.assemble_with == "Line" else b""
    inputs = obj.records or []  # prepare keeps them whenever the job joins
    plain = (obj.plain_csv and proc.join and fmt_out == CSV and proc.split_type == "Line"
             and not proc.inference_time)
    join_cut_for = _picker(proc.output_filter, s).join_cut if plain else None
    for b, resp in zip(obj.batches, responses):
        if join_cut_for is not None:
            joined_lines = _join_plain_csv(obj.name, b, resp, inputs, join_cut_for, s, sep)
            if joined_lines is not None:
                pieces.extend(joined_lines)
                continue
        if not proc.pairs_records and proc.output_filter.is_root:
            # InputFilter alone: the response passes through as the service sends it back.
            pieces.append(resp)
            if proc.assemble_with == "Line" and (s.newline_after_response == "always" or not resp.endswith(b"\n")):
                pieces.append(b"\n")
            continue
        if proc.pairs_records:
            outs = _records_of(resp, fmt_out, proc.split_type)
            _check_count(obj.name, b, len(outs))
        else:
            # OutputFilter without a join filters what the container returned, record by
            # record of the response, whatever their number (divergence 1 in batch_transform/README.md).
            outs = _response_records(resp, fmt_out)
            if s.record_alignment == "always":
                _check_count(obj.name, b, len(outs))
        for k, out_raw in enumerate(outs):
            line = b.first_line + k
            if proc.pairs_records:
                where = f"{obj.name} line {line}"
            else:
                where = f"{obj.name} lines {b.first_line}-{b.first_line + b.count - 1} (response record {k + 1})"
            out_val = decode_record(out_raw, fmt_out, where, what="output from the algorithm")
            if proc.join:
                joined = join_record(obj.record(line - 1), out_val, proc.in_format, proc.inference_time)
            else:
                joined = out_val
            picked = filter_record(proc.output_filter, joined, s, f"{where} (joined record)" if proc.join else where)
            pieces.append(encode_record(picked, fmt_out, s) + sep)
    return b"".join(pieces)


def _join_plain_csv(name: str, b: MiniBatch, resp: bytes, inputs: list, join_cut_for, s: DataPlaneSettings,
                    sep: bytes) -> list[bytes] | None:
    """assemble's CSV join for plain rows on both sides: the input row, then the response's
    fields, cut by the OutputFilter's positions; None leaves the batch to the per-record path
    (a quote or non-UTF-8 byte in the response, or a filter that fails on some row)."""
    text = _plain_csv_text(resp)
    if text is None:
        return None
    outs = _plain_lines(text)
    _check_count(name, b, len(outs))
    if not outs:
        return []
    texts = []
    first = b.first_line - 1
    for k, out in enumerate(outs):
        inp = inputs[first + k]
        cut = join_cut_for(inp.count(",") + 1, out.count(",") + 1)  # join_record of two plain rows
        if cut is None:
            return None
        texts.append(cut(inp, out))
    # encode_record's test for plain fields (only these characters could need quotes), once for
    # the batch; a hit across two lines only sends it line by line
    end = sep.decode()
    body = end.join(texts) + end
    if not _MAY_NEED_QUOTES.search(body):
        return [body.encode("utf-8")]
    return [(encode_record(t.split(","), CSV, s) if _MAY_NEED_QUOTES.search(t) else t.encode("utf-8")) + sep
            for t in texts]


def _response_records(resp: bytes, fmt: str) -> list[bytes]:
    """The records of a response without a join: an application/json answer is one
    document (or, if it is not one, JSON Lines); CSV and JSON Lines answers are lines."""
    if fmt == JSON:
        try:
            json.loads(resp)
            return [resp]
        except ValueError:
            pass
    return split_lines(resp)


def filter_record(path: jsonpath.JsonPath, value, settings: DataPlaneSettings, where: str):
    return jsonpath.apply(path, value, slice_end_inclusive=settings.slice_end_inclusive,
                          slice_past_end=settings.slice_past_end, multi_range=settings.multi_range_filters,
                          where=where)


def _check_count(name: str, b: MiniBatch, got: int) -> None:
    if got != b.count:
        last = b.first_line + b.count - 1
        raise DataError(
            f"{name} lines {b.first_line}-{last}",
            f"the container returned {got} record(s) for a mini-batch of {b.count}",
            "the model must answer one output line per input line, in order",
        )


def join_record(inp, out, fmt: str, inference_time: str | None = None):
    """JoinSource=Input: CSV appends the output row after the unfiltered input row; JSON
    adds SageMakerOutput, wrapping a non-object input as SageMakerInput (BTS §3.3, §3.4).
    With GenerateInferenceId, CSV gains two last columns (id, time) and JSON the keys
    SageMakerInferenceId and SageMakerInferenceTime."""
    if fmt == CSV:
        row = list(inp) + (list(out) if isinstance(out, list) else [out])
        if inference_time:
            row += [str(uuid.uuid4()), inference_time]
        return row
    if isinstance(inp, dict):
        joined = dict(inp)
        joined["SageMakerOutput"] = out
    else:
        joined = {"SageMakerInput": inp, "SageMakerOutput": out}
    if inference_time:
        joined["SageMakerInferenceId"] = str(uuid.uuid4())
        joined["SageMakerInferenceTime"] = inference_time
    return joined


# ------------------------------------------------------------------ record codecs
class RawNumber(str):
    """A JSON number kept as its source text (filtered_payload_text="source")."""


def decode_record(raw: bytes, fmt: str, where: str, what: str = "input", numbers_as_text: bool = False):
    if fmt == CSV:
        try:
            line = raw.decode("utf-8")
            if '"' not in line:
                # No quoting: plain str fields, which by construction hold no , " or newline.
                return line.split(",")
            return parse_csv_line(line)
        except UnicodeDecodeError as e:
            raise DataError(where, f"{what} is not UTF-8: {e}") from e
        except ValueError as e:
            raise DataError(where, f"Failed to parse {what} as CSV: {e}",
                            "CSV must follow RFC 4180 (one record per line)") from e
    try:
        if numbers_as_text:
            return json.loads(raw, parse_float=RawNumber, parse_int=RawNumber, parse_constant=RawNumber)
        return json.loads(raw)
    except ValueError as e:
        raise DataError(where, f"Failed to parse {what} as JSON: {e}") from e


def encode_source_text(value, fmt: str) -> bytes:
    """The selected part of a record in its source text: CSV fields as they were written
    (quotes included), JSON compact with numbers as written and keys in input order."""
    if fmt == CSV:
        row = value if isinstance(value, list) else [value]
        return ",".join(v.raw if isinstance(v, CsvField) else v for v in row).encode("utf-8")
    return _json_source_text(value).encode("utf-8")


def _json_source_text(v) -> str:
    if isinstance(v, RawNumber):
        return str.__str__(v)
    if isinstance(v, dict):
        return "{" + ",".join(json.dumps(k, ensure_ascii=False) + ":" + _json_source_text(x)
                              for k, x in v.items()) + "}"
    if isinstance(v, list):
        return "[" + ",".join(_json_source_text(x) for x in v) + "]"
    return json.dumps(v, ensure_ascii=False)


_PLAIN = {str}
_MAY_NEED_QUOTES = re.compile(r"[ \t\r]|\\\.")  # encode_record's (" ", "\t", "\r", "\\.")


def encode_record(value, fmt: str, settings: DataPlaneSettings) -> bytes:
    if fmt == CSV:
        row = value if isinstance(value, list) else [value]
        if set(map(type, row)) == _PLAIN:
            # Fields from unquoted text: only a leading space/tab, CR or `\.` could need quotes.
            joined = ",".join(row)
            if not any(c in joined for c in (" ", "\t", "\r", "\\.")):
                return joined.encode("utf-8")
        return ",".join(_csv_field(v, settings) for v in row).encode("utf-8")
    return json.dumps(_plain(value), separators=(",", ":"), sort_keys=settings.json_sort_keys,
                      ensure_ascii=False).encode("utf-8")


def _plain(v):
    if isinstance(v, CsvField):
        return v.value
    if isinstance(v, RawNumber):
        return json.loads(v)
    if isinstance(v, list):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    return v


class CsvField(str):
    """A CSV field's value that remembers the exact text it was read from."""

    raw: str

    def __new__(cls, value: str, raw: str):
        obj = super().__new__(cls, value)
        obj.raw = raw
        return obj

    @property
    def value(self) -> str:
        return str.__str__(self)


def parse_csv_line(line: str) -> list[CsvField]:
    """One RFC 4180 record. Quotes are only legal around a whole field; a bare quote
    inside an unquoted field is an error, as in Go's encoding/csv used by the service."""
    fields: list[CsvField] = []
    i, n = 0, len(line)
    while True:
        start = i
        if i < n and line[i] == '"':
            i += 1
            buf = []
            while True:
                j = line.find('"', i)
                if j < 0:
                    raise ValueError(f'extraneous or missing " in quoted-field near: {line[start:start + 40]!r}')
                buf.append(line[i:j])
                if j + 1 < n and line[j + 1] == '"':
                    buf.append('"')
                    i = j + 2
                    continue
                i = j + 1
                break
            if i < n and line[i] != ",":
                raise ValueError(f'extraneous or missing " in quoted-field near: {line[start:start + 40]!r}')
            fields.append(CsvField("".join(buf), line[start:i]))
        else:
            j = line.find(",", i)
            j = n if j < 0 else j
            text = line[i:j]
            if '"' in text:
                raise ValueError(f'bare " in non quoted field found near: {text[:40]!r}')
            fields.append(CsvField(text, text))
            i = j
        if i >= n:
            return fields
        i += 1  # the comma
        if i == n:
            fields.append(CsvField("", ""))
            return fields


def _csv_field(v, settings: DataPlaneSettings) -> str:
    if settings.csv_quoting == "verbatim":
        if isinstance(v, CsvField):
            return v.raw
        if type(v) is str:
            return v  # read from an unquoted field: its text is its value
    text = v.value if isinstance(v, CsvField) else (v if isinstance(v, str) else json.dumps(v, separators=(",", ":")))
    if _needs_quotes(text):
        return '"' + text.replace('"', '""') + '"'
    return text


def _needs_quotes(text: str) -> bool:
    if text == "":
        return False
    if text == "\\.":
        return True
    return any(c in text for c in ',"\r\n') or text[0] in " \t"
