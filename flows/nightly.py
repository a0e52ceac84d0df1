"""Prefect flows: `nightly` (one run date or origin range) and `backfill` (many dates).

Tasks are thin wrappers over flows/stages.py, so the same code runs from the CLI, from a
Prefect deployment and in tests. Task results are not cached by Prefect: the stages'
own records in the store decide what a rerun reuses.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from velibcast import forecasts, manifest
from velibcast.errors import VelibcastError
from velibcast.config import load_config
from velibcast.flows import stages
from velibcast.flows.prefect_logs import forwarded_to
from velibcast.flows.progress import RunProgress
from velibcast.flows.publish import publish_lock
from velibcast.flows.run_identity import RunSpec, yesterday_in_paris
from velibcast.flows.run_artifacts import publish_run_artifacts
from velibcast.flows.run_names import nightly_run_name
from velibcast.flows.task_policy import RETRY_OPTS, timed
from velibcast.timeutil import UTC

TASK_OPTS = dict(cache_policy=NO_CACHE, persist_result=False, **RETRY_OPTS)


@task(name="prepare", **TASK_OPTS)
def prepare_task(config_path, run_date, start, end, force):
    cfg = load_config(config_path)
    default = cfg["run"]["default_run_date"]
    if run_date is None and start is None:
        run_date = date.fromisoformat(str(default)) if default else yesterday_in_paris()
    if start is not None and run_date is None:
        run_date = stages.paris_date(start)
    return stages.make_context(cfg, RunSpec(run_date, start, end), force=force)


@task(name="windows", **TASK_OPTS)
def windows_task(ctx):
    return stages.stage_windows(ctx)


@task(name="transform", **TASK_OPTS)
def transform_task(ctx, windows, progress):
    with forwarded_to(get_run_logger()):  # the runtime's `[sagemaker logs]` lines, from its own threads
        return stages.stage_transform(ctx, windows, progress.transform_objects)


@task(name="join-and-publish", **TASK_OPTS)
def publish_task(ctx, windows, transform, started_at):
    table, join = stages.stage_join(ctx, transform)
    with publish_lock(ctx.storage, ctx.root, ctx.spec.run_date, ctx.run_id):
        uri = forecasts.publish(ctx.storage, ctx.root, ctx.spec.run_date, table)
        m = stages.build_manifest(ctx, windows, transform, join, uri, table, started_at)
        manifest_uri = manifest.write(ctx.storage, ctx.root, ctx.run_id, m)
    return m, manifest_uri


@task(name="report-png", **TASK_OPTS)
def report_task(ctx):
    from velibcast.flows.report_png import render_run_png

    return render_run_png(ctx.storage, ctx.root, ctx.spec.run_date)


@task(name="score-previous-night", **TASK_OPTS)
def score_task(ctx):
    """Accuracy of the night before this run's date, now that its actuals are in the store."""
    from velibcast.flows.score import score_run

    return score_run(ctx.storage, ctx.cfg, ctx.spec.run_date - timedelta(days=1))


def _optional(logger, what, fn, *args):
    """Reports and scores never block tonight's forecasts; a failure is logged with its cause."""
    try:
        return fn(*args)
    except VelibcastError as e:
        logger.warning("%s failed: %s", what, e)
        return {"status": "failed", "error": str(e)}


@flow(name="nightly", flow_run_name=nightly_run_name, log_prints=True)
def nightly(run_date: date | None = None, config: str = "configs/local.yaml",
            start: datetime | None = None, end: datetime | None = None, force: bool = False,
            score_previous_night: bool = True) -> dict:
    """Forecast every station for each hourly origin of `run_date` (a Europe/Paris local day;
    default: yesterday there), or of [start, end) when given. `score_previous_night=False` leaves
    the scoring of the day before to the caller (a backfill scores each date once it is published)."""
    logger = get_run_logger()
    started_at = datetime.now(UTC)
    ctx = prepare_task(config, run_date, start, end, force)
    logger.info("run %s: %d origins, model %s", ctx.run_id, len(ctx.origins), ctx.model_version)
    # What an earlier attempt of this run already finished (its stage records): said, not silently reused.
    reused = [s for s in ("windows", "transform") if stages.load_stage(ctx, s) is not None]
    progress = RunProgress(ctx.spec.label)
    progress.stage_done("prepare")
    w = timed(windows_task, ctx.cfg, "windows")(ctx)
    progress.stage_done("windows")
    logger.info("windows: %d emitted, skipped %s", w["windows_emitted"], w["windows_skipped_by_reason"])
    t = timed(transform_task, ctx.cfg, "transform")(ctx, w, progress)
    progress.stage_done("transform")
    logger.info("transform job %s: %s", t["describe"]["TransformJobName"], t["describe"]["TransformJobStatus"])
    if reused:
        logger.info(reuse_message(ctx.run_id, reused, t["describe"]["TransformJobName"]))
    m, manifest_uri = timed(publish_task, ctx.cfg, "publish")(ctx, w, t, started_at)
    progress.stage_done("publish")
    png = _optional(logger, "report PNG", timed(report_task, ctx.cfg, "report"), ctx)
    scored = (_optional(logger, "scoring the previous night", timed(score_task, ctx.cfg, "score"), ctx)
              if score_previous_night else {"message": "left to the caller"})
    logger.info("report: %s; previous night: %s", png.get("uri", png.get("error")), scored.get("message", scored.get("error")))
    stages.report_artifacts(ctx, m, scored)
    publish_run_artifacts(ctx.spec.label, m, manifest_uri, png.get("uri"))
    progress.stage_done("report")
    logger.info("forecasts: %s (%d rows); manifest: %s", m["outputs"]["forecast_parquet"],
                m["counts"]["forecast_rows"], manifest_uri)
    return {"run_id": ctx.run_id, "manifest_uri": manifest_uri, **m["outputs"], "counts": m["counts"],
            "report_png": png.get("uri"), "verdict": png.get("verdict"), "previous_night_score": scored, "cost_estimate": m["cost_estimate"],
            "reused": reuse_message(ctx.run_id, reused, t["describe"]["TransformJobName"]) if reused else None}


def reuse_message(run_id: str, reused: list[str], job_name: str) -> str:
    msg = f"rerun of {run_id}: reused {' and '.join(reused)} from an earlier attempt"
    if "transform" in reused:
        return msg + f"; transform job {job_name} was not started again, so no new job was billed"
    return msg + f"; transform job {job_name} ran in this attempt"
