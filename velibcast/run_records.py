"""Typed records between a run's stages, and the run manifest.

Each stage hands the next one a dataclass, never a free dict; what goes to the store is
`to_json(record)` and what comes back is `from_json(cls, obj, where)`, which checks every
field's presence and type against the dataclass. A record written by another schema
version, or missing a field, or holding a field of the wrong type, fails with an error
naming the record and the field before anything is published.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from datetime import datetime

from velibcast import constants as C
from velibcast.errors import DataError
from velibcast.redact import redact_text

SCHEMA_VERSION = C.RUN_RECORD_SCHEMA_VERSION


# ---------------------------------------------------------------- checking
def _type_name(t) -> str:
    return getattr(t, "__name__", None) or str(t)


def _check(value, t, where: str, name: str):
    """`value` as type `t` (nested dataclasses are built), or a DataError naming the field."""
    origin = typing.get_origin(t)
    if origin in (typing.Union, types.UnionType):
        errors = []
        for arm in typing.get_args(t):
            try:
                return _check(value, arm, where, name)
            except DataError as e:
                errors.append(e)
        raise errors[-1]
    if origin is typing.Literal:
        if value in typing.get_args(t):
            return value
        raise DataError(where, f"field {name!r} is {value!r}, expected one of {list(typing.get_args(t))}",
                        "the record was written by another version or edited by hand; rerun with --force")
    if t is type(None):
        if value is None:
            return None
    elif dataclasses.is_dataclass(t):
        if isinstance(value, dict):
            return from_json(t, value, f"{where} field {name}")
    elif t is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif t is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif origin is list:
        if isinstance(value, list):
            (arm,) = typing.get_args(t)
            return [_check(v, arm, where, f"{name}[{i}]") for i, v in enumerate(value)]
    elif origin is dict:
        if isinstance(value, dict):
            _, arm = typing.get_args(t)
            return {k: _check(v, arm, where, f"{name}[{k!r}]") for k, v in value.items()}
    elif t in (dict, list, str, bool):
        if isinstance(value, t):
            return value
    else:  # pragma: no cover - a field type this checker does not know is a programming error
        raise TypeError(f"run_records cannot check fields of type {t!r}")
    raise DataError(where, f"field {name!r} is {type(value).__name__} {str(value)[:60]!r}, expected {_type_name(t)}",
                    "the record was written by another version or edited by hand; rerun with --force")


def from_json(cls, obj: dict, where: str):
    """Build dataclass `cls` from a JSON object, checking every field."""
    if not isinstance(obj, dict):
        raise DataError(where, f"expected a JSON object, found {type(obj).__name__}", "rerun with --force")
    hints = typing.get_type_hints(cls)
    if "schema_version" in hints and obj.get("schema_version") != SCHEMA_VERSION:
        raise DataError(where, f"schema_version {obj.get('schema_version')!r}, this version of velibcast reads "
                        f"{SCHEMA_VERSION}", "rerun with --force to recompute the record")
    kwargs = {}
    for f in dataclasses.fields(cls):
        if not f.init:  # derived from the other fields when the record is built
            continue
        if f.name not in obj:
            if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING:
                continue
            raise DataError(where, f"field {f.name!r} is missing", "rerun with --force to recompute the record")
        kwargs[f.name] = _check(obj[f.name], hints[f.name], where, f.name)
    return cls(**kwargs)


def _default(o):
    if hasattr(o, "isoformat"):
        return o.isoformat()
    if hasattr(o, "to_dict"):
        return o.to_dict()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def dumps(obj) -> str:
    """JSON of a record, with any credentials in URLs redacted (velibcast.redact)."""
    return redact_text(json.dumps(obj, indent=2, sort_keys=False, default=_default))


def to_json(record) -> dict:
    """The record as plain JSON values (datetimes as ISO strings), redacted of credentials."""
    return json.loads(dumps(dataclasses.asdict(record)))


def validated(record):
    """The record after a round trip through JSON and the checker: what a reader will get."""
    return from_json(type(record), to_json(record), type(record).__name__)


# ---------------------------------------------------------------- stage records
@dataclass
class WindowsRecord:
    stations_seen: int
    origins: int
    windows_emitted: int
    windows_unknown_station: int
    windows_skipped_by_reason: dict[str, int]
    report: dict
    data_quality: dict | None
    layout: dict
    shards: list[str]
    input_prefix: str
    input_digest: str                 # sha256 over the shards' names and bytes: the job's input identity
    known_stations: int               # stations in the model's mapping
    station_origins_open: int         # installed and renting by their latest record (datasets.windows.WindowSummary)
    windows_by_origin: dict[str, int]  # origin (ISO, UTC) -> windows emitted
    snapshots_uri: str
    started_at: str
    finished_at: str
    schema_version: int = SCHEMA_VERSION
    # What the stage read, by content: a rerun reuses the record only if both are unchanged (a record
    # written before they were recorded has "" and is recomputed).
    model_digest: str = ""            # sha256 of the model.tar.gz's bytes (its station index shapes the windows)
    snapshots_digest: str = ""        # the snapshot objects of the span, by name and version as listed


@dataclass(frozen=True)
class TransformJob:
    """What the later stages read of the transform job: from its spec and its final describe."""

    name: str
    status: str               # always Completed: a failed or stopped job raises before a record is made
    output_prefix: str        # where its .out objects are, ending in "/"
    instance_type: str
    instance_count: int
    creation_time: str | None  # ISO; a job that has not started has no start or end time
    start_time: str | None
    end_time: str | None

    @classmethod
    def of(cls, spec: dict, describe: dict) -> TransformJob:
        """The job of a completed attempt, or a DataError naming what is missing or wrong."""
        where = f"transform job {describe.get('TransformJobName') or spec.get('TransformJobName')}"

        def at(d: dict, path: str, t: type):
            v: typing.Any = d
            for k in path.split("."):
                v = v.get(k) if isinstance(v, dict) else None
            if not isinstance(v, t) or isinstance(v, bool):
                raise DataError(where, f"{path} is {v!r}, expected {t.__name__}",
                                "the backend answered outside the DescribeTransformJob shape")
            return v

        status = at(describe, "TransformJobStatus", str)
        if status != "Completed":
            raise DataError(where, f"status {status!r}: only a completed job's outputs are read", "rerun")
        name = at(describe, "TransformJobName", str)
        if name != at(spec, "TransformJobName", str):
            raise DataError(where, f"the describe names job {name}, the spec {spec['TransformJobName']}",
                            "the record mixes two attempts; rerun with --force")

        def time(k: str) -> str | None:
            v = describe.get(k)  # a datetime from a backend, ISO text from the store
            return v.isoformat() if isinstance(v, datetime) else v if isinstance(v, str) else None

        return cls(name=name, status=status,
                   output_prefix=at(spec, "TransformOutput.S3OutputPath", str).rstrip("/") + "/",
                   instance_type=at(spec, "TransformResources.InstanceType", str),
                   instance_count=at(spec, "TransformResources.InstanceCount", int),
                   creation_time=time("CreationTime"), start_time=time("TransformStartTime"),
                   end_time=time("TransformEndTime"))


@dataclass
class TransformRecord:
    """The transform stage's result: the job as sent and as described, and its typed fields (`job`),
    checked when the record is built, whether from a backend's answer or from the store."""

    job_spec: dict
    describe: dict
    backend: typing.Literal["local", "sagemaker"]
    input_digest: str
    schema_version: int = SCHEMA_VERSION
    model_digest: str = ""            # sha256 of the model.tar.gz that made the predictions
    job: TransformJob = field(init=False)

    def __post_init__(self):
        self.job = TransformJob.of(self.job_spec, self.describe)


@dataclass
class JoinRecord:
    records_sent: int
    output_objects: int
    predictions_joined: int


# ---------------------------------------------------------------- manifest
@dataclass
class Counts:
    stations_seen: int
    origins: int
    windows_emitted: int
    windows_skipped: int
    records_rejected: dict
    objects_rejected: dict
    windows_skipped_by_reason: dict[str, int]
    windows_unknown_station: int
    records_sent: int
    predictions_written: int
    forecast_rows: int
    # station-origins whose latest record at or before the origin says installed and renting (the
    # window stage's rule, datasets.windows.WindowSummary); coverage is the share of them forecast
    station_origins_open: int
    coverage: float


@dataclass
class PartitionOutcome:
    """What publishing did to one date's object."""

    run_date: str
    uri: str
    action: str               # created | replaced | merged
    rows_of_this_run: int
    rows_before: int
    rows_after: int
    rows_replaced: int        # rows of earlier runs at this run's origins, now replaced
    kept_runs: list[str]      # other runs whose rows the merged object keeps


@dataclass
class Outputs:
    forecast_parquet: str     # the object of the run's own date (spec.run_date)
    run_dir: str
    manifest_uri: str         # runs/<run_id>/attempts/<attempt>.json: this attempt's manifest, never rewritten
    partitions: list[PartitionOutcome] = field(default_factory=list)


@dataclass
class Manifest:
    run_id: str
    attempt: str              # unique per attempt; the published Parquet names the attempt it holds
    started_at: str
    finished_at: str
    parameters: dict
    counts: Counts
    skips: dict
    data_quality: dict | None
    transform_input_layout: dict
    transform_job: dict
    timings_s: dict
    cost_estimate: dict
    outputs: Outputs
    schema_version: int = SCHEMA_VERSION
