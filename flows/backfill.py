"""Backfill: one child nightly run per date, a bounded number at a time, one summary.

A date is complete when its forecast partition exists, holds only rows of the run this
config and model would compute now (same run_id, and the same model.tar.gz bytes: another
artifact under the same version is another model), carries that run's manifest, and
`runs/<run_id>/manifest.json` names the attempt the partition holds with its row count
(a run that died between publishing and that rewrite is redone); complete dates are
skipped unless `force` is set. Child runs are ordinary nightly runs, so each resumes what a killed
backfill left half done.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from velibcast import constants as C
from velibcast import process_settings
from velibcast.cli_types import RANGE_CONVENTION
from velibcast.config import load_config
from velibcast.errors import ConfigError, NotFound, VelibcastError
from velibcast.flows import forecasts, manifest
from velibcast.flows.nightly import nightly
from velibcast.flows.products import EVALUATION
from velibcast.flows.run_identity import RunSpec, run_id_for
from velibcast.flows.run_model import ModelInfo, load_model_info, run_model_uri
from velibcast.flows.run_names import backfill_run_name
from velibcast.flows.score import score_run


def is_complete(cfg, storage, run_date: date, model: ModelInfo) -> bool:
    expected = run_id_for(RunSpec(run_date), cfg.hash(), model.version)
    try:
        table, carried = forecasts.read_partition_manifests(storage, cfg.root, EVALUATION.name, run_date)
        current = manifest.read(storage, cfg.root, expected)
    except NotFound:
        return False
    published = carried.get(expected)
    return (set(table.column("run_id").to_pylist()) == {expected} and published is not None
            and published.get("attempt") == current.get("attempt")
            and (published.get("parameters") or {}).get("model_sha256") == model.sha256
            and published["counts"]["forecast_rows"] == table.num_rows)


@task(name="child-run", task_run_name="child-run-{run_date}", cache_policy=NO_CACHE, persist_result=False)
def child_run(config: str, run_date: date, force: bool) -> dict:
    try:
        # Dates run side by side: a child scoring "its previous night" could read a date still being
        # published. The backfill scores each date itself, after that date is published.
        res = nightly(run_date=run_date, config=config, force=force, score_previous_night=False)
        return {"run_date": run_date.isoformat(), "status": "completed", "run_id": res["run_id"],
                "forecast_rows": res["counts"]["forecast_rows"]}
    except VelibcastError as e:
        return {"run_date": run_date.isoformat(), "status": "failed", "error": str(e)}


@task(name="score", task_run_name="score-{run_date}", cache_policy=NO_CACHE, persist_result=False)
def score_date(config: str, run_date: date) -> dict:
    cfg = load_config(config)
    try:
        return score_run(cfg.storage(), cfg, run_date)
    except VelibcastError as e:
        return {"run_date": run_date.isoformat(), "status": "failed", "message": str(e)}


@flow(name="backfill", flow_run_name=backfill_run_name, log_prints=True)
def backfill(start_date: date, end_date: date, config: str = "configs/local.yaml", force: bool = False,
             max_concurrency: int = C.BACKFILL_CONCURRENCY) -> dict:
    """Run nightly for every date in [start_date, end_date): end_date is excluded, like every range."""
    process_settings.for_flow_run_process()  # a worker's process for this run is an entry point
    if end_date <= start_date:
        raise ConfigError(f"end_date {end_date} must be after start_date {start_date} ({RANGE_CONVENTION}; "
                          f"one night: end_date {start_date + timedelta(days=1)})")
    logger = get_run_logger()
    cfg = load_config(config)
    storage = cfg.storage()
    model = load_model_info(storage, run_model_uri(cfg, storage))
    dates = [start_date + timedelta(days=i) for i in range((end_date - start_date).days)]
    results: list[dict[str, Any]] = []
    todo: list[date] = []
    for d in dates:
        if not force and is_complete(cfg, storage, d, model):
            results.append({"run_date": d.isoformat(), "status": "skipped (complete)"})
        else:
            todo.append(d)
    for i in range(0, len(todo), max(1, max_concurrency)):
        futures = [child_run.submit(config, d, force) for d in todo[i:i + max_concurrency]]
        for f in futures:
            r = f.result()
            logger.info("%s: %s", r["run_date"], r["status"])
            results.append(r)
    results.sort(key=lambda r: r["run_date"])
    # Every child has ended, so each date scored here is published (and the one before it too).
    for r in results:
        if r["status"] == "completed":
            s = score_date(config, date.fromisoformat(r["run_date"]))
            r["score"] = s.get("status")
            logger.info("%s scored: %s", r["run_date"], s.get("message", s.get("status")))
    summary = {s: sum(1 for r in results if r["status"].startswith(s)) for s in ("completed", "skipped", "failed")}
    return {"dates": results, "summary": summary}
