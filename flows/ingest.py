"""Ingest: bring the hourly station states (docs/states-dataset.md) up to the captures in the store.

Its own deployment, run a few minutes after each capture: a forecast run never waits for it
and never writes the states. An ingest rewrites only the hour objects a new capture changes. A
run reads an hour from the states only when the date's ledger holds exactly the captures the run
lists for that hour and the hour's object is the one that ledger committed (datasets/ingest.py),
so a late, missed or half-done ingest costs a run the raw reading of those hours, never a wrong
state.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from prefect import flow, get_run_logger, task

from velibcast import process_settings
from velibcast.config import load_config
from velibcast.datasets import ingest as ing
from velibcast.datasets.report import ValidationPolicy
from velibcast.errors import ConfigError
from velibcast.flows.task_policy import TASK_OPTS
from velibcast.timeutil import UTC

# How far back a scheduled ingest looks by default: the dates a capture taken now can reach
# (the states rule's lag), and the day before for captures that arrived late.
DEFAULT_DAYS_BACK = 2


def ingest_range(end: datetime | None, days_back: int, now: datetime | None = None) -> tuple[datetime, datetime]:
    """[start, end) of whole UTC days: the `days_back` days before the end's day, and that day."""
    end = (end or now or datetime.now(UTC)).astimezone(UTC)
    if days_back < 0:
        raise ConfigError(f"days_back {days_back}: give 0 or more days")
    day_end = end.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    return day_end - timedelta(days=days_back + 1), day_end


def run_ingest(config: str, start: datetime, end: datetime, as_of: datetime | None = None) -> dict:
    """The ingest of [start, end) for a config's store: what a CLI or a task calls."""
    cfg = load_config(config)
    result = ing.ingest(cfg.storage(), cfg.snapshots_root, cfg.root, start, end,
                        ValidationPolicy.from_config(cfg), as_of)
    return result.to_dict()


@task(name="ingest-states", **TASK_OPTS)
def ingest_task(config: str, start: datetime, end: datetime) -> dict:
    return run_ingest(config, start, end)


@flow(name="ingest-states", log_prints=True)
def ingest_states(config: str = "configs/local.yaml", end: datetime | None = None,
                  days_back: int = DEFAULT_DAYS_BACK) -> dict:
    """Ingest the UTC days from `days_back` days before `end` (default: now) through its day."""
    process_settings.for_flow_run_process()  # a worker's process for this run is an entry point
    start, stop = ingest_range(end, days_back)
    result = ingest_task(config, start, stop)
    get_run_logger().info("states of %s .. %s: written %s (%d hours), rebuilt %s, unchanged %s, %d captures parsed",
                          start.date(), (stop - timedelta(days=1)).date(), result["written"] or "none",
                          len(result["hours_written"]), result["rebuilt"] or "none", len(result["unchanged"]),
                          result["captures_parsed"])
    return result
