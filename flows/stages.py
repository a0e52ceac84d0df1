"""The nightly run's stages as plain functions; flows/nightly.py runs them under Prefect.

Each stage records its outputs in `runs/<run_id>/stages/<stage>.json` when it completes.
A rerun of the same run_id reuses a stage whose record exists, so a run killed mid-way
resumes where it stopped: state lives in the store, not in memory (the dlt pattern).
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import pyarrow as pa
import pyarrow.parquet as pq

from velibcast import constants as C
from velibcast import storage as st
from velibcast.batch_transform.sagemaker_backend import billed_seconds
from velibcast.config import Config
from velibcast.datasets.assemble import assemble_transform_inputs
from velibcast.datasets.quality import QualityTracker
from velibcast.datasets.records import shard_count_for
from velibcast.datasets.report import SKIPPED_WINDOW, ValidationPolicy
from velibcast.datasets.windows import origins_for_range, origins_for_run_date, snapshots_read
from velibcast.errors import ConfigError, DataError, NotFound, TerminalError
from velibcast.flows import backends, cost, forecasts, manifest
from velibcast.flows.products import Product, product_named
from velibcast.flows.run_artifacts import artifact_key
from velibcast.flows.run_identity import RunSpec, run_id_for
from velibcast.flows.run_model import load_model_info, run_model_uri
from velibcast.run_records import (
    Counts,
    JoinRecord,
    Manifest,
    Outputs,
    TransformRecord,
    WindowsRecord,
    dumps,
    from_json,
    to_json,
    validated,
)
from velibcast.timeutil import UTC, iso_minute, key_time_us, seconds_between
from velibcast.training.registry import read_metadata, summary_line


@dataclass
class RunContext:
    cfg: Config
    storage: st.Storage
    spec: RunSpec
    origins: list[datetime]
    model_uri: str
    model_version: str
    station_index: dict[str, int]
    run_id: str
    model_digest: str      # sha256 of the model.tar.gz's bytes
    snapshots_digest: str  # the snapshot objects the windows read, as listed when the run started
    force: bool = False

    @property
    def root(self) -> str:
        return self.cfg.root

    @property
    def run_dir(self) -> str:
        return manifest.run_dir(self.root, self.run_id)

    def path(self, *parts: str) -> str:
        return st.join(self.run_dir, *parts)

    @property
    def product(self) -> Product:
        return product_named(self.spec.product)


# ---------------------------------------------------------------- stage records
def stage_record_uri(ctx: RunContext, stage: str) -> str:
    return ctx.path("stages", f"{stage}.json")


def load_stage(ctx: RunContext, stage: str, cls):
    """The stage's typed record if a previous attempt completed it from what this run would read
    now (never under --force): the same model artifact's bytes, not only its version, and for the
    windows the same snapshot objects, not only their names."""
    if ctx.force:
        return None
    uri = stage_record_uri(ctx, stage)
    try:
        raw = json.loads(ctx.storage.read_text(uri))
    except NotFound:
        return None
    record = from_json(cls, raw, uri)
    if record.model_digest != ctx.model_digest:
        return None
    if isinstance(record, WindowsRecord) and record.snapshots_digest != ctx.snapshots_digest:
        return None
    return record


def completed_stages(ctx: RunContext) -> list[str]:
    """The stages a previous attempt of this run completed, which this one will reuse."""
    done = [s for s, cls in (("windows", WindowsRecord), ("transform", TransformRecord))
            if load_stage(ctx, s, cls) is not None]
    if "transform" in done:  # reused only for the inputs it was computed from
        w = load_stage(ctx, "windows", WindowsRecord)
        t = load_stage(ctx, "transform", TransformRecord)
        if w is None or t is None or w.input_digest != t.input_digest:
            done.remove("transform")
    return done


def save_stage(ctx: RunContext, stage: str, record):
    """Check the record's fields and types, store it, and return it as a later run will read it."""
    record = validated(record)
    ctx.storage.write_text(stage_record_uri(ctx, stage), dumps(to_json(record)), "application/json")
    return record


def make_context(cfg: Config, spec: RunSpec, force: bool = False) -> RunContext:
    storage = cfg.storage()

    model_uri = run_model_uri(cfg, storage)
    model = load_model_info(storage, model_uri)
    if spec.start is None or spec.end is None:  # a whole Paris day
        origins = origins_for_run_date(spec.run_date)
    else:
        origins = origins_for_range(spec.start, spec.end)
    if not origins:
        raise ConfigError(f"the range {spec.label} holds no hourly origin; check --start/--end")
    return RunContext(cfg, storage, spec, origins, model_uri, model.version, model.station_index,
                      run_id_for(spec, cfg.hash(), model.version), model.sha256,
                      snapshots_digest(cfg, storage, origins, spec.as_of), force)


def snapshots_digest(cfg: Config, storage: st.Storage, origins: list[datetime], as_of: datetime | None = None) -> str:
    """sha256 over the snapshot objects the windows of `origins` read, by name and version as listed
    (the ETag on S3, size and mtime locally): snapshots corrected under the same keys change it."""
    h = hashlib.sha256()
    for ref in snapshots_read(storage, cfg.snapshots_root, origins, _max_staleness(cfg),
                              ValidationPolicy.from_config(cfg), as_of):
        h.update(f"{ref.uri}\0{ref.version}\0".encode())
    return h.hexdigest()


def _max_staleness(cfg: Config) -> timedelta:
    return timedelta(hours=cfg.windows.max_staleness_hours)


# ---------------------------------------------------------------- windows
def stage_windows(ctx: RunContext) -> WindowsRecord:
    """Snapshots -> windows -> transform input shards, plus the record index for the join."""
    done = load_stage(ctx, "windows", WindowsRecord)
    if done:
        return done

    t0 = datetime.now(UTC)
    policy = ValidationPolicy.from_config(ctx.cfg)
    t = ctx.cfg.transform
    input_prefix = ctx.path("transform", "input") + "/"
    # Recomputing: the old record goes first (a failure below leaves no record that describes
    # files this attempt overwrote), and so do the old shards (none is left behind to be sent).
    ctx.storage.delete(stage_record_uri(ctx, "windows"))
    for old in list(ctx.storage.list(input_prefix)):
        ctx.storage.delete(old.uri)
    # the one streaming window path (datasets/assemble.py): shards and the record index as it goes
    result = assemble_transform_inputs(
        ctx.storage, ctx.cfg.snapshots_root, ctx.origins, input_prefix, fmt=t.format,
        station_index=ctx.station_index,
        max_staleness=_max_staleness(ctx.cfg), policy=policy,
        max_shard_bytes=t.max_shard_bytes,
        shard_count=shard_count_for(t.instance_count, t.max_concurrent_transforms),
        report_uri=ctx.path("windows", "assembly.json"), index_uri=ctx.path("windows", "index.parquet"),
        observers=[QualityTracker()], as_of=ctx.spec.as_of,
        # the hours the stored hourly states settle for this run are read from them, the rest raw
        states_root=ctx.root,
    )
    skips = result.report
    summary = result.summary
    coverage = dict(known_stations=len(ctx.station_index), windows_by_origin=windows_by_origin(ctx),
                    stations_seen=summary["stations_seen"], data_quality=result.data_quality,
                    snapshots_uri=st.join(ctx.cfg.snapshots_root, C.SNAPSHOT_PREFIX) + "/")
    check_coverage(ctx, **coverage)  # before the transform: a degenerate night costs no job
    ctx.storage.write_text(ctx.path("windows", "skips.json"), dumps(skips), "application/json")
    return save_stage(ctx, "windows", WindowsRecord(
        origins=len(ctx.origins),
        windows_emitted=summary["windows_emitted"],
        windows_unknown_station=summary["windows_unknown_station"],
        station_origins_open=summary["open_station_origins"],
        # missing_station counts mapped stations absent from every snapshot: not grid windows
        windows_skipped_by_reason={r: n for r, n in skips["by_kind"].get(SKIPPED_WINDOW, {}).items()
                                   if r != "missing_station"},
        report=skips,
        layout=result.layout,
        shards=result.shards,
        input_prefix=input_prefix,
        input_digest=inputs_digest(ctx.storage, result.shards),
        started_at=t0.isoformat(),
        finished_at=datetime.now(UTC).isoformat(),
        model_digest=ctx.model_digest,
        snapshots_digest=ctx.snapshots_digest,
        **coverage,
    ))


def windows_by_origin(ctx: RunContext) -> dict[str, int]:
    """Windows per origin (every origin, 0 when it has none)."""
    index = read_index_table(ctx)
    counts = {o.isoformat(): 0 for o in ctx.origins}
    for row in index.group_by("origin_ts").aggregate([([], "count_all")]).to_pylist():
        counts[row["origin_ts"].isoformat()] = row["count_all"]
    return counts


def inputs_digest(storage: st.Storage, shards: list[str]) -> str:
    """sha256 over the shards' names and bytes as stored: what the transform job will read."""
    h = hashlib.sha256()
    for uri in sorted(shards):
        h.update(uri.rsplit("/", 1)[-1].encode() + b"\0")
        h.update(hashlib.sha256(storage.read_bytes(uri)).digest())
    return h.hexdigest()


def check_coverage(ctx: RunContext, *, known_stations: int, windows_by_origin: dict[str, int],
                   stations_seen: int, data_quality: dict | None, snapshots_uri: str) -> None:
    """Refuse a degenerate night (no snapshots for the date, a wrong root, a half import): an
    origin with windows for fewer than `run.min_station_coverage` of the network, the network
    being the larger of the stations the model knows and those seen in the snapshots read (so
    an empty store cannot shrink it to nothing, nor a model that knows few stations)."""
    minimum = ctx.cfg.run.min_station_coverage
    network = max(known_stations, stations_seen)
    low = [(o, n) for o, n in sorted(windows_by_origin.items()) if n < minimum * network]
    if not low:
        return
    q = data_quality or {}
    found = (f"{q.get('snapshots', 0)} snapshots read for hours {_hhmm(min(windows_by_origin))} - 24 h .. "
             f"{_hhmm(max(windows_by_origin))}" +
             (f", captured {q['first_capture']} .. {q['last_capture']}" if q.get("first_capture") else "") +
             f", {stations_seen} stations seen")
    raise DataError(
        f"run date {ctx.spec.run_date} ({ctx.spec.label}), snapshots {snapshots_uri}",
        f"{len(low)} of {len(windows_by_origin)} origins have windows for fewer than {minimum:.0%} of the "
        f"{network} stations of the network (the model knows {known_stations}) (first: {_hhmm(low[0][0])} with "
        f"{low[0][1]}, last: {_hhmm(low[-1][0])} with {low[-1][1]}); found {found}",
        "check snapshots.root and that the import of these hours finished, then rerun; nothing was published "
        "(run.min_station_coverage sets the threshold)")


def _hhmm(iso: str) -> str:
    return iso_minute(datetime.fromisoformat(iso))


# ---------------------------------------------------------------- transform
def server_spec(ctx: RunContext) -> dict:
    """The job spec's fields that shape its model servers, known before the windows are written."""
    t = ctx.cfg.transform
    return {
        "MaxConcurrentTransforms": t.max_concurrent_transforms,
        "MaxPayloadInMB": t.max_payload_mb,
        "BatchStrategy": t.batch_strategy,
        "TransformResources": {"InstanceType": t.instance_type, "InstanceCount": t.instance_count},
    }


def job_spec_for(ctx: RunContext, layout: dict, input_prefix: str, job_name: str, model_name: str) -> dict:
    """The CreateTransformJob request; the same JSON goes to the local runtime and to SageMaker."""
    t, s = ctx.cfg.transform, server_spec(ctx)
    return {
        "TransformJobName": job_name,
        "ModelName": model_name,
        "MaxConcurrentTransforms": s["MaxConcurrentTransforms"],
        "MaxPayloadInMB": s["MaxPayloadInMB"],
        "BatchStrategy": s["BatchStrategy"],
        "ModelClientConfig": {
            "InvocationsTimeoutInSeconds": t.invocations_timeout_s,
            "InvocationsMaxRetries": t.invocations_max_retries,
        },
        "TransformInput": {
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": st.as_uri(input_prefix)}},
            "ContentType": layout["content_type"],
            "CompressionType": "None",
            "SplitType": layout["split_type"],
        },
        "TransformOutput": {
            # one output folder per attempt: a killed attempt's partial outputs never mix with the next one's
            "S3OutputPath": st.as_uri(ctx.path("transform", "output", job_name)),
            "Accept": layout["content_type"],  # a join parses the response in the input's format
            "AssembleWith": "Line",
        },
        "TransformResources": s["TransformResources"],
        "DataProcessing": {
            "InputFilter": layout["input_filter"],
            "OutputFilter": layout["output_filter"],
            "JoinSource": layout["join_source"],
        },
    }


def model_name_for(version: str) -> str:
    return ("velibcast-" + re.sub(r"[^A-Za-z0-9-]+", "-", version)).strip("-")[: C.JOB_NAME_MAX_LEN]


def transform_backend(ctx: RunContext, progress=None, start_servers: bool = False):
    """The night's transform backend (a context manager); with start_servers, the local runtime's
    model servers start at once and load while the windows are written: 1.8 s of the nightly
    transform's 6 s was their start-up, after the windows stage had ended."""
    servers = (model_name_for(ctx.model_version), server_spec(ctx)) if start_servers else None
    return backends.transform_backend(ctx, progress, servers)


def stage_transform(ctx: RunContext, windows: WindowsRecord, backend) -> TransformRecord:
    done = load_stage(ctx, "transform", TransformRecord)
    if done and done.input_digest == windows.input_digest:
        return done  # predictions of these very inputs by this very model; others get a job of their own

    model_name = model_name_for(ctx.model_version)
    spec_for = lambda job_name: job_spec_for(ctx, windows.layout, windows.input_prefix, job_name, model_name)
    # raises TransformJobFailed naming the cause
    return save_stage(ctx, "transform", backends.run_transform_job(backend, ctx, spec_for, model_name,
                                                                   windows.input_digest))


# ---------------------------------------------------------------- join and publish
def read_index_table(ctx: RunContext) -> pa.Table:
    return pq.read_table(io.BytesIO(ctx.storage.read_bytes(ctx.path("windows", "index.parquet"))))


def stage_join(ctx: RunContext, transform: TransformRecord) -> tuple[pa.Table, JoinRecord]:
    index = read_index_table(ctx)
    objects = [o.uri for o in ctx.storage.list(transform.job.output_prefix) if o.uri.endswith(".out")]
    outputs = [(u, ctx.storage.read_bytes(u)) for u in objects]
    table = forecasts.join_index(index, outputs, ctx.cfg.transform.format, ctx.model_version, ctx.run_id,
                                 ctx.product)
    return table, JoinRecord(records_sent=len(index.column("record_id").unique()), output_objects=len(objects),
                             predictions_joined=table.num_rows // len(ctx.product.horizons))


def estimate_cost(ctx: RunContext, transform: TransformRecord, windows: WindowsRecord) -> dict:
    seconds = billed_seconds(transform.describe)
    job = transform.job
    n_in = len(windows.shards)
    return cost.estimate(
        cost.load_prices(ctx.cfg.pricing_path()),
        instance_type=job.instance_type, instance_count=job.instance_count, seconds=seconds,
        # the job GETs each input and PUTs each output (one multipart upload per object, 3 requests);
        # the run itself PUTs inputs and the forecast partition and GETs outputs.
        s3_puts=n_in * 3 + n_in + 1, s3_gets=n_in * 2 + 1,
        region=ctx.cfg.transform.sagemaker.region, backend=transform.backend,
    )


def paris_date(ts: datetime):
    return forecasts.paris_date(ts)


# ---------------------------------------------------------------- manifest
def build_manifest(ctx: RunContext, windows: WindowsRecord, transform: TransformRecord, join: JoinRecord,
                   table: pa.Table, started_at: datetime) -> Manifest:
    """Everything the run records, checked, before anything is published: counts that add up,
    enough of the network covered, a price for the cost estimate, every field typed."""
    job = transform.job
    skipped = windows.windows_skipped_by_reason
    counts = Counts(
        stations_seen=windows.stations_seen,
        origins=windows.origins,
        windows_emitted=windows.windows_emitted,
        windows_skipped=sum(skipped.values()),
        records_rejected=windows.report["by_kind"].get("records_rejected", {}),
        objects_rejected=windows.report["by_kind"].get("objects_rejected", {}),
        windows_skipped_by_reason=skipped,
        windows_unknown_station=windows.windows_unknown_station,
        records_sent=join.records_sent,
        predictions_written=join.predictions_joined,
        forecast_rows=table.num_rows,
        station_origins_open=windows.station_origins_open,
        coverage=round(windows.windows_emitted / windows.station_origins_open, 4)
        if windows.station_origins_open else 0.0,
    )
    if counts.records_sent != counts.windows_emitted or counts.forecast_rows != len(ctx.product.horizons) * counts.windows_emitted:
        raise TerminalError(f"run {ctx.run_id}: counts do not add up {counts}; nothing was published")
    check_coverage(ctx, known_stations=windows.known_stations, windows_by_origin=windows.windows_by_origin,
                   stations_seen=windows.stations_seen, data_quality=windows.data_quality,
                   snapshots_uri=windows.snapshots_uri)
    attempt = f"{key_time_us(started_at)}-{uuid.uuid4().hex[:8]}"
    finished = datetime.now(UTC)
    m = Manifest(
        run_id=ctx.run_id,
        attempt=attempt,
        started_at=started_at.isoformat(),
        finished_at=finished.isoformat(),
        parameters={
            "product": ctx.product.name,
            "as_of": ctx.spec.as_of,
            "run_date": ctx.spec.run_date.isoformat(),
            "start": ctx.spec.start, "end": ctx.spec.end,
            "origins_first": ctx.origins[0], "origins_last": ctx.origins[-1],
            "config_source": ctx.cfg.source,
            "config_hash": ctx.cfg.hash(),
            "config": ctx.cfg.data,
            "model_uri": ctx.model_uri,
            "model_version": ctx.model_version,
            "model_sha256": ctx.model_digest,
            "model_backtest": _model_backtest(ctx),
            "force": ctx.force,
        },
        counts=counts,
        skips=windows.report,
        data_quality=windows.data_quality,
        transform_input_layout=windows.layout,
        transform_job={
            "backend": transform.backend,
            "spec": transform.job_spec,
            "status": job.status,
            "input_digest": transform.input_digest,
            "creation_time": job.creation_time,
            "start_time": job.start_time,
            "end_time": job.end_time,
        },
        timings_s={
            "windows": _seconds(windows.started_at, windows.finished_at),
            "transform_billed": round(billed_seconds(transform.describe), 3),
            "total": (finished - started_at).total_seconds(),
        },
        cost_estimate=estimate_cost(ctx, transform, windows),
        outputs=Outputs(
            forecast_parquet=forecasts.partition_uri(ctx.root, ctx.product.name, ctx.spec.run_date),
            run_dir=ctx.run_dir,
            manifest_uri=manifest.attempt_uri(ctx.root, ctx.run_id, attempt),
        ),
    )
    return validated(m)


def _model_backtest(ctx: RunContext) -> dict | None:
    """The served model's backtest summary (training.registry), so a manifest shows what it stood on."""
    return summary_line(read_metadata(ctx.storage, ctx.model_uri))


def _seconds(a, b) -> float:
    return round(seconds_between(a, b), 3)


def report_artifacts(ctx: RunContext, m: dict, scored: dict | None = None) -> None:
    """A Prefect table artifact with the run summary (no-op outside a Prefect run)."""
    # lazy: Prefect in library code: stages also run outside Prefect
    from prefect.artifacts import create_table_artifact
    from prefect.context import get_run_context  # lazy: Prefect in library code: stages also run outside Prefect

    try:
        get_run_context()
    except Exception:
        return
    c = m["counts"]
    rows = [
        {"item": "run_id", "value": m["run_id"]},
        {"item": "stations seen", "value": c["stations_seen"]},
        {"item": "windows emitted", "value": c["windows_emitted"]},
        *({"item": f"skipped: {k}", "value": v} for k, v in (c["windows_skipped_by_reason"] or {}).items()),
        {"item": "predictions written", "value": c["predictions_written"]},
        {"item": "forecast rows", "value": c["forecast_rows"]},
        {"item": "estimated cost (USD)", "value": m["cost_estimate"]["total"]},
        *({"item": f"previous night MAE h{r['horizon_h']} (model / persistence)",
           "value": f"{r['mae_model']:.2f} / {r['mae_persistence']:.2f}"}
          for r in (scored or {}).get("by_horizon", [])),
        {"item": "forecast parquet", "value": m["outputs"]["forecast_parquet"]},
    ]
    create_table_artifact(rows, key=artifact_key("run-summary", ctx.spec.label), description=f"velibcast run {m['run_id']}")
