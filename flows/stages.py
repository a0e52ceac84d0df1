"""The nightly run's stages as plain functions; flows/nightly.py runs them under Prefect.

Each stage records its outputs in `runs/<run_id>/stages/<stage>.json` when it completes.
A rerun of the same run_id reuses a stage whose record exists, so a run killed mid-way
resumes where it stopped: state lives in the store, not in memory (the dlt pattern).
"""

from __future__ import annotations

import io
import json
import re
import tarfile
from dataclasses import dataclass
from datetime import datetime, timedelta

import pyarrow as pa
import pyarrow.parquet as pq

from velibcast import constants as C
from velibcast import cost, forecasts, manifest
from velibcast import storage as st
from velibcast.config import Config
from velibcast.errors import ConfigError, NotFound, TerminalError
from velibcast.flows.run_identity import RunSpec, run_id_for
from velibcast.timeutil import PARIS, UTC, seconds_between


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
    force: bool = False

    @property
    def root(self) -> str:
        return self.cfg.root

    @property
    def run_dir(self) -> str:
        return manifest.run_dir(self.root, self.run_id)

    def path(self, *parts: str) -> str:
        return st.join(self.run_dir, *parts)


# ---------------------------------------------------------------- stage records
def stage_record_uri(ctx: RunContext, stage: str) -> str:
    return ctx.path("stages", f"{stage}.json")


def load_stage(ctx: RunContext, stage: str) -> dict | None:
    if ctx.force:
        return None
    try:
        return json.loads(ctx.storage.read_text(stage_record_uri(ctx, stage)))
    except NotFound:
        return None


def save_stage(ctx: RunContext, stage: str, record: dict) -> dict:
    ctx.storage.write_text(stage_record_uri(ctx, stage), manifest.dumps(record), "application/json")
    return record


# ---------------------------------------------------------------- model
def _tar_members(storage: st.Storage, uri: str, names: set[str]) -> dict[str, bytes]:
    out = {}
    with tarfile.open(fileobj=io.BytesIO(storage.read_bytes(uri)), mode="r:gz") as tar:
        for m in tar.getmembers():
            name = m.name.removeprefix("./")
            if name in names and m.isfile():
                out[name] = tar.extractfile(m).read()
    return out


def load_model_info(storage: st.Storage, uri: str) -> tuple[str, dict[str, int]]:
    from velibcast.transform_code.velib_features import contract_problem

    members = _tar_members(storage, uri, {"metadata.json", "station_mappings.json", "config.json"})
    for need in ("metadata.json", "station_mappings.json", "config.json"):
        if need not in members:
            raise TerminalError(f"{uri} has no {need} at its root; rebuild it with `velibcast train`")
    # Refused before any window is built, not by the servers mid-job.
    problem = contract_problem(json.loads(members["config.json"]).get("feature_columns"))
    if problem:
        raise TerminalError(f"{uri}: {problem}")
    meta = json.loads(members["metadata.json"])
    mappings = json.loads(members["station_mappings.json"])
    return meta["version"], {str(k): int(v) for k, v in mappings["station_index"].items()}


def make_context(cfg: Config, spec: RunSpec, force: bool = False) -> RunContext:
    from velibcast.datasets.windows import origins_for_range, origins_for_run_date

    storage = cfg.storage()
    from velibcast.training.registry import champion_model_uri

    model_uri = cfg["model"]["uri"] or champion_model_uri(storage, cfg.root)
    version, station_index = load_model_info(storage, model_uri)
    origins = origins_for_run_date(spec.run_date) if spec.start is None else origins_for_range(spec.start, spec.end)
    if not origins:
        raise ConfigError(f"the range {spec.label} holds no hourly origin; check --start/--end")
    return RunContext(cfg, storage, spec, origins, model_uri, version, station_index,
                      run_id_for(spec, cfg.hash(), version), force)


# ---------------------------------------------------------------- windows
def stage_windows(ctx: RunContext) -> dict:
    """Snapshots -> windows -> transform input shards, plus the record index for the join."""
    done = load_stage(ctx, "windows")
    if done:
        return done
    from velibcast.datasets.assemble import assemble_transform_inputs
    from velibcast.datasets.quality import QualityTracker
    from velibcast.datasets.records import shard_count_for
    from velibcast.datasets.report import SKIPPED_WINDOW, ValidationPolicy

    t0 = datetime.now(UTC)
    policy = ValidationPolicy(on_bad_record=ctx.cfg["snapshots"]["on_bad_record"],
                              on_bad_object=ctx.cfg["snapshots"]["on_bad_object"])
    t = ctx.cfg["transform"]
    input_prefix = ctx.path("transform", "input") + "/"
    # the one streaming window path (datasets/assemble.py): shards and the record index as it goes
    result = assemble_transform_inputs(
        ctx.storage, ctx.cfg.snapshots_root, ctx.origins, input_prefix, fmt=t["format"],
        station_index=ctx.station_index,
        max_staleness=timedelta(hours=float(ctx.cfg["windows"]["max_staleness_hours"])), policy=policy,
        max_shard_bytes=int(t["max_shard_bytes"]),
        shard_count=shard_count_for(t["instance_count"], t["max_concurrent_transforms"]),
        report_uri=ctx.path("windows", "assembly.json"), index_uri=ctx.path("windows", "index.parquet"),
        observers=[QualityTracker()],
    )
    skips = result["report"]
    ctx.storage.write_text(ctx.path("windows", "skips.json"), manifest.dumps(skips), "application/json")
    summary = result["summary"]
    return save_stage(ctx, "windows", {
        "stations_seen": summary["stations_seen"],
        "origins": len(ctx.origins),
        "windows_emitted": summary["windows_emitted"],
        "windows_unknown_station": summary["windows_unknown_station"],
        # missing_station counts mapped stations absent from every snapshot: not grid windows
        "windows_skipped_by_reason": {r: n for r, n in skips["by_kind"].get(SKIPPED_WINDOW, {}).items()
                                      if r != "missing_station"},
        "report": skips,
        "data_quality": result.get("data_quality"),
        "layout": result["layout"],
        "shards": result["shards"],
        "input_prefix": input_prefix,
        "started_at": t0.isoformat(),
        "finished_at": datetime.now(UTC).isoformat(),
    })


# ---------------------------------------------------------------- transform
def job_spec_for(ctx: RunContext, layout: dict, input_prefix: str, job_name: str, model_name: str) -> dict:
    """The CreateTransformJob request; the same JSON goes to the local runtime and to SageMaker."""
    t = ctx.cfg["transform"]
    return {
        "TransformJobName": job_name,
        "ModelName": model_name,
        "MaxConcurrentTransforms": int(t["max_concurrent_transforms"]),
        "MaxPayloadInMB": int(t["max_payload_mb"]),
        "BatchStrategy": t["batch_strategy"],
        "ModelClientConfig": {
            "InvocationsTimeoutInSeconds": int(t["invocations_timeout_s"]),
            "InvocationsMaxRetries": int(t["invocations_max_retries"]),
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
        "TransformResources": {"InstanceType": t["instance_type"], "InstanceCount": int(t["instance_count"])},
        "DataProcessing": {
            "InputFilter": layout["input_filter"],
            "OutputFilter": layout["output_filter"],
            "JoinSource": layout["join_source"],
        },
    }


def model_name_for(version: str) -> str:
    return ("velibcast-" + re.sub(r"[^A-Za-z0-9-]+", "-", version)).strip("-")[: C.JOB_NAME_MAX_LEN]


def stage_transform(ctx: RunContext, windows: dict, progress=None) -> dict:
    done = load_stage(ctx, "transform")
    if done:
        return done
    from velibcast.flows.backends import run_transform

    model_name = model_name_for(ctx.model_version)
    spec_for = lambda job_name: job_spec_for(ctx, windows["layout"], windows["input_prefix"], job_name, model_name)
    spec, describe = run_transform(ctx, spec_for, model_name, progress)  # raises TransformJobFailed naming the cause
    return save_stage(ctx, "transform", {
        "job_spec": spec,
        "describe": describe,
        "backend": ctx.cfg["transform"]["backend"],
    })


# ---------------------------------------------------------------- join and publish
def read_index(ctx: RunContext) -> dict[str, forecasts.SentRecord]:
    table = pq.read_table(io.BytesIO(ctx.storage.read_bytes(ctx.path("windows", "index.parquet"))))
    rows = table.to_pylist()
    return {r["record_id"]: forecasts.SentRecord(r["station_code"], r["origin_ts"], r["capacity"], r["unknown_station"])
            for r in rows}


def stage_join(ctx: RunContext, transform: dict) -> tuple[pa.Table, dict]:
    sent = read_index(ctx)
    out_prefix = transform["job_spec"]["TransformOutput"]["S3OutputPath"].rstrip("/") + "/"
    objects = [o.uri for o in ctx.storage.list(out_prefix) if o.uri.endswith(".out")]
    outputs = [(u, ctx.storage.read_bytes(u)) for u in objects]
    table = forecasts.join_predictions(sent, outputs, ctx.cfg["transform"]["format"], ctx.model_version, ctx.run_id)
    return table, {"records_sent": len(sent), "output_objects": len(objects), "predictions_joined": table.num_rows // 3}


def estimate_cost(ctx: RunContext, transform: dict, windows: dict) -> dict:
    d = transform["describe"]
    seconds = cost.billed_seconds(d["TransformStartTime"], d["TransformEndTime"])
    res = transform["job_spec"]["TransformResources"]
    n_in = len(windows["shards"])
    return cost.estimate(
        cost.load_prices(ctx.cfg.pricing_path()),
        instance_type=res["InstanceType"], instance_count=res["InstanceCount"], seconds=seconds,
        # the job GETs each input and PUTs each output (one multipart upload per object, 3 requests);
        # the run itself PUTs inputs and the forecast partition and GETs outputs.
        s3_puts=n_in * 3 + n_in + 1, s3_gets=n_in * 2 + 1,
        region=ctx.cfg["transform"]["sagemaker"]["region"], backend=ctx.cfg["transform"]["backend"],
    )


def paris_date(ts: datetime):
    return ts.astimezone(PARIS).date()


# ---------------------------------------------------------------- manifest
def build_manifest(ctx: RunContext, windows: dict, transform: dict, join: dict, parquet_uri: str,
                   table: pa.Table, started_at: datetime) -> dict:
    d = transform["describe"]
    finished = datetime.now(UTC)
    skipped = windows["windows_skipped_by_reason"]
    counts = {
        "stations_seen": windows["stations_seen"],
        "origins": windows["origins"],
        "windows_emitted": windows["windows_emitted"],
        "windows_skipped": sum(skipped.values()),
        "records_rejected": windows["report"]["by_kind"].get("records_rejected", {}),
        "objects_rejected": windows["report"]["by_kind"].get("objects_rejected", {}),
        "windows_skipped_by_reason": skipped,
        "windows_unknown_station": windows["windows_unknown_station"],
        "records_sent": join["records_sent"],
        "predictions_written": join["predictions_joined"],
        "forecast_rows": table.num_rows,
    }
    if counts["records_sent"] != counts["windows_emitted"] or counts["forecast_rows"] != 3 * counts["windows_emitted"]:
        raise TerminalError(f"run {ctx.run_id}: counts do not add up {counts}; nothing was published")
    return {
        "run_id": ctx.run_id,
        "started_at": started_at.isoformat(),
        "finished_at": finished.isoformat(),
        "parameters": {
            "run_date": ctx.spec.run_date.isoformat(),
            "start": ctx.spec.start, "end": ctx.spec.end,
            "origins_first": ctx.origins[0], "origins_last": ctx.origins[-1],
            "config_source": ctx.cfg.source,
            "config_hash": ctx.cfg.hash(),
            "config": ctx.cfg.data,
            "model_uri": ctx.model_uri,
            "model_version": ctx.model_version,
            "model_backtest": _model_backtest(ctx),
        },
        "counts": counts,
        "skips": windows["report"],
        "data_quality": windows.get("data_quality"),
        "transform_input_layout": windows["layout"],
        "transform_job": {
            "backend": transform["backend"],
            "spec": transform["job_spec"],
            "status": d["TransformJobStatus"],
            "creation_time": d.get("CreationTime"),
            "start_time": d.get("TransformStartTime"),
            "end_time": d.get("TransformEndTime"),
        },
        "timings_s": {
            "windows": _seconds(windows["started_at"], windows["finished_at"]),
            "transform_billed": _seconds(d["TransformStartTime"], d["TransformEndTime"]),
            "total": (finished - started_at).total_seconds(),
        },
        "cost_estimate": estimate_cost(ctx, transform, windows),
        "outputs": {
            "forecast_parquet": parquet_uri,
            "run_dir": ctx.run_dir,
        },
    }


def _model_backtest(ctx: RunContext) -> dict | None:
    """The served model's backtest summary (training.registry), so a manifest shows what it stood on."""
    from velibcast.training.registry import read_metadata, summary_line

    return summary_line(read_metadata(ctx.storage, ctx.model_uri))


def _seconds(a, b) -> float:
    return round(seconds_between(a, b), 3)


def report_artifacts(ctx: RunContext, m: dict, scored: dict | None = None) -> None:
    """A Prefect table artifact with the run summary (no-op outside a Prefect run)."""
    from prefect.artifacts import create_table_artifact
    from prefect.context import get_run_context

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
    key = "run-summary-" + "".join(ch if ch.isalnum() else "-" for ch in ctx.spec.label.lower())
    create_table_artifact(rows, key=key[:100], description=f"velibcast run {m['run_id']}")
