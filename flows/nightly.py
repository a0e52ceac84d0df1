"""The Prefect flows of one run: `forecast` (the day-ahead and nowcast products, as of a time)
and `nightly` (the evaluation product: one past run date or origin range; flows/backfill.py
runs it per date). Both run the same stages (flows/products.py says what differs).

Tasks are thin wrappers over flows/stages.py, so the same code runs from the CLI, from a
Prefect deployment and in tests. Task results are not cached by Prefect: the stages'
own records in the store decide what a rerun reuses.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from enum import StrEnum

from prefect import flow, get_run_logger, task

from velibcast import process_settings
from velibcast.config import load_config
from velibcast.errors import ConfigError
from velibcast.flows import manifest, stages
from velibcast.flows.prefect_logs import forwarded_to
from velibcast.flows.preflight import default_run_date, product_spec
from velibcast.flows.progress import RunProgress
from velibcast.flows.publish import publish_run
from velibcast.flows.report_png import render_run_png
from velibcast.flows.run_artifacts import publish_run_artifacts
from velibcast.flows.run_identity import RunSpec
from velibcast.flows.run_names import flow_run_start, forecast_run_name, nightly_run_name
from velibcast.flows.score import score_run
from velibcast.flows.task_policy import TASK_OPTS, timed
from velibcast.redact import redact_text
from velibcast.run_records import to_json
from velibcast.timeutil import UTC


class Scoring(StrEnum):
    """What a run scores once its forecasts are published (never holding them back)."""

    PREVIOUS_NIGHT = "previous-night"  # the evaluation product: the night before the run date, its actuals now in
    PUBLISHED = "published"  # day-ahead and nowcast: the product's forecasts of the day before and of the run date
    CALLER = "caller"  # nothing: the caller scores (a backfill scores each date once it is published)


@task(name="prepare", **TASK_OPTS)
def prepare_task(config_path: str, run_date: date | None, start: datetime | None, end: datetime | None,
                 force: bool, started: datetime | None = None) -> stages.RunContext:
    """The run's context; without a run date or a range, the default day as of `started` (the flow
    run's expected start, which its name took it at)."""
    if run_date is not None and start is not None:
        raise ConfigError(f"give a run date ({run_date}) or an origin range ({start} .. {end}), not both: "
                          "a range publishes under the Paris dates of its own origins")
    cfg = load_config(config_path)
    if run_date is None:
        run_date = default_run_date(cfg, started) if start is None else stages.paris_date(start)
    return stages.make_context(cfg, RunSpec(run_date, start, end), force=force)


@task(name="prepare", **TASK_OPTS)
def prepare_product_task(config_path: str, product: str, as_of: datetime | None, force: bool) -> stages.RunContext:
    cfg = load_config(config_path)
    return stages.make_context(cfg, product_spec(cfg, product, as_of), force=force)


@task(name="windows", **TASK_OPTS)
def windows_task(ctx):
    return stages.stage_windows(ctx)


@task(name="transform", **TASK_OPTS)
def transform_task(ctx, windows, backend):
    with forwarded_to(get_run_logger()):  # the runtime's `[sagemaker logs]` lines, from its own threads
        return stages.stage_transform(ctx, windows, backend)


@task(name="join-and-publish", **TASK_OPTS)
def publish_task(ctx, windows, transform, started_at):
    """Everything recorded and checked first; then the forecasts and their manifest, together."""
    table, join = stages.stage_join(ctx, transform)
    m = stages.build_manifest(ctx, windows, transform, join, table, started_at)
    return publish_run(ctx.storage, ctx.root, ctx.product.name, m, table, ctx.origins,
                       whole_days=ctx.spec.start is None)


@task(name="report-png", **TASK_OPTS)
def report_task(ctx):
    return render_run_png(ctx.storage, ctx.root, ctx.spec.run_date, product=ctx.product.name)


@task(name="score-previous-night", **TASK_OPTS)
def score_task(ctx):
    """Accuracy of the night before this run's date, now that its actuals are in the store."""

    return score_run(ctx.storage, ctx.cfg, ctx.spec.run_date - timedelta(days=1))


@task(name="score-published", **TASK_OPTS)
def score_published_task(ctx):
    """Forward accuracy: the product's forecasts of the day before and of this run's date, scored
    on the targets observed by this run's as-of time (later ones wait for a later run)."""
    days = [ctx.spec.run_date - timedelta(days=1), ctx.spec.run_date]
    res = [score_run(ctx.storage, ctx.cfg, d, product=ctx.product.name, as_of=ctx.spec.as_of) for d in days]
    return {"dates": res, "message": "; ".join(f"{r['run_date']}: {r['status']}" for r in res)}


def _optional(logger, skipped: list, what, fn, *args):
    """Reports, scores and artifacts never block tonight's forecasts, whatever they raise:
    the failure is logged with its cause and listed in the run's result."""
    try:
        return fn(*args) or {}
    except Exception as e:  # by design: the forecasts are already published
        cause = f"{type(e).__name__}: {e}"
        if e.__cause__ is not None:
            cause += f" (caused by {type(e.__cause__).__name__}: {e.__cause__})"
        cause = redact_text(cause)
        logger.warning("%s skipped: %s", what, cause)
        skipped.append({"step": what, "error": cause})
        return {"status": "failed", "error": cause}


@flow(name="nightly", flow_run_name=nightly_run_name, log_prints=True)
def nightly(run_date: date | None = None, config: str = "configs/local.yaml",
            start: datetime | None = None, end: datetime | None = None, force: bool = False,
            score_previous_night: bool = True) -> dict:
    """Forecast every station for each hourly origin of `run_date` (a Europe/Paris local day;
    default: yesterday there), or of [start, end) when given. `score_previous_night=False` leaves
    the scoring of the day before to the caller (a backfill scores each date once it is published)."""
    process_settings.for_flow_run_process()  # a worker's process for this run is an entry point
    started_at = datetime.now(UTC)
    ctx = prepare_task(config, run_date, start, end, force, flow_run_start())
    return _run(ctx, started_at, Scoring.PREVIOUS_NIGHT if score_previous_night else Scoring.CALLER)


@flow(name="forecast", flow_run_name=forecast_run_name, log_prints=True)
def forecast(product: str = "day-ahead", as_of: datetime | None = None, config: str = "configs/local.yaml",
             force: bool = False) -> dict:
    """Forecast every open station from the latest whole hour with data at `as_of` (default: now),
    reading no capture taken after it: `day-ahead` for horizons 1..24, `nowcast` for 1..3."""
    process_settings.for_flow_run_process()  # a worker's process for this run is an entry point
    started_at = datetime.now(UTC)
    ctx = prepare_product_task(config, product, as_of, force)
    return _run(ctx, started_at, Scoring.PUBLISHED)


def _run(ctx: stages.RunContext, started_at: datetime, scoring: Scoring) -> dict:
    logger = get_run_logger()
    logger.info("run %s (%s): %d origins, model %s", ctx.run_id, ctx.product.name, len(ctx.origins),
                ctx.model_version)
    # What an earlier attempt of this run already finished (its stage records): said, not silently reused.
    reused = stages.completed_stages(ctx)
    progress = RunProgress(ctx.spec.label)
    progress.stage_done("prepare")
    # The local runtime's model servers load while the windows are written, unless this attempt
    # reuses an earlier one's transform; they are stopped however the two stages end.
    with stages.transform_backend(ctx, progress.transform_objects, start_servers="transform" not in reused) as backend:
        w = timed(windows_task, ctx.cfg, "windows")(ctx)
        progress.stage_done("windows")
        logger.info("windows: %d emitted, skipped %s", w.windows_emitted, w.windows_skipped_by_reason)
        t = timed(transform_task, ctx.cfg, "transform")(ctx, w, backend)
        progress.stage_done("transform")
    logger.info("transform job %s: %s", t.job.name, t.job.status)
    if reused:
        logger.info(reuse_message(ctx.run_id, reused, t.job.name))
    m = timed(publish_task, ctx.cfg, "publish")(ctx, w, t, started_at)
    progress.stage_done("publish")
    skipped: list[dict] = []
    png = (_optional(logger, skipped, "report PNG", timed(report_task, ctx.cfg, "report"), ctx)
           if ctx.product.report_png else {"error": f"not drawn for the {ctx.product.name} product"})
    if scoring is Scoring.PUBLISHED:
        scored = _optional(logger, skipped, "scoring published forecasts", timed(score_published_task, ctx.cfg, "score"),
                           ctx)
    elif scoring is Scoring.PREVIOUS_NIGHT:
        scored = _optional(logger, skipped, "scoring the previous night", timed(score_task, ctx.cfg, "score"), ctx)
    else:
        scored = {"message": "left to the caller"}
    logger.info("report: %s; scores: %s", png.get("uri", png.get("error")), scored.get("message", scored.get("error")))
    record = to_json(m)
    current_manifest = manifest.manifest_uri(ctx.root, ctx.run_id)
    _optional(logger, skipped, "run summary artifact", stages.report_artifacts, ctx, record, scored)
    _optional(logger, skipped, "run artifacts", publish_run_artifacts, ctx.spec.label, record, current_manifest,
              png.get("uri"))
    progress.stage_done("report")
    for p in m.outputs.partitions:
        logger.info("forecasts %s: %s (%d rows of this run, %d replaced, %d in the object)", p.uri, p.action,
                    p.rows_of_this_run, p.rows_replaced, p.rows_after)
    logger.info("manifest: %s; skipped optional steps: %s", m.outputs.manifest_uri,
                [s["step"] for s in skipped] or "none")
    return {**record["outputs"], "run_id": ctx.run_id, "manifest_uri": current_manifest,
            "attempt_manifest_uri": m.outputs.manifest_uri, "counts": record["counts"],
            "report_png": png.get("uri"), "verdict": png.get("verdict"), "previous_night_score": scored,
            "skipped": skipped, "cost_estimate": record["cost_estimate"],
            "reused": reuse_message(ctx.run_id, reused, t.job.name) if reused else None}


def reuse_message(run_id: str, reused: list[str], job_name: str) -> str:
    msg = f"rerun of {run_id}: reused {' and '.join(reused)} from an earlier attempt"
    if "transform" in reused:
        return msg + f"; transform job {job_name} was not started again, so no new job was billed"
    return msg + f"; transform job {job_name} ran in this attempt"
