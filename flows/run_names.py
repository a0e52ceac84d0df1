"""Flow run names a user can read in the Prefect UI: nightly-2022-05-26, day-ahead-2022-05-26T0030Z,
backfill-2022-05-25..2022-05-27.

Prefect calls these when a run starts (flow_run_name=); they read the run's parameters, and what a
run without a date or an as-of time runs for is decided as the run decides it (flows/preflight).
"""

from __future__ import annotations

from datetime import date, datetime

from velibcast.config import load_config
from velibcast.flows import preflight
from velibcast.timeutil import UTC, name_minute


def _as_date(v) -> date | None:
    if v is None or isinstance(v, date):
        return v
    return date.fromisoformat(str(v)[:10])


def _as_time(v) -> datetime | None:
    if v is None or isinstance(v, datetime):
        return v
    return datetime.fromisoformat(str(v).replace("Z", "+00:00"))


def nightly_name(params: dict, now: datetime | None = None) -> str:
    """The name of a nightly run of these parameters that starts at `now` (default: now)."""
    start, end = _as_time(params.get("start")), _as_time(params.get("end"))
    if start is not None and end is not None:
        return f"nightly-{name_minute(start)}-{name_minute(end)}"
    run_date = _as_date(params.get("run_date")) or preflight.default_run_date(load_config(params.get("config")), now)
    return f"nightly-{run_date.isoformat()}"


def forecast_name(params: dict) -> str:
    as_of = _as_time(params.get("as_of")) or preflight.configured_as_of(load_config(params.get("config")))
    return f"{params.get('product', 'day-ahead')}-{name_minute(as_of.astimezone(UTC)) if as_of else 'now'}"


def backfill_name(params: dict) -> str:
    return f"backfill-{_as_date(params['start_date'])}..{_as_date(params['end_date'])}"


def flow_run_start() -> datetime:
    """The current flow run's expected start time: the instant its default run date is decided at, for
    its name and its run alike (a retried or late-started run keeps its day)."""
    from prefect.runtime import flow_run  # lazy: Prefect's runtime context, read only inside a flow run

    return datetime.fromtimestamp(flow_run.scheduled_start_time.timestamp(), UTC)


def nightly_run_name() -> str:
    from prefect.runtime import flow_run  # lazy: Prefect's runtime context, read only when Prefect names a run

    return nightly_name(flow_run.parameters, flow_run_start())


def forecast_run_name() -> str:
    from prefect.runtime import flow_run  # lazy: Prefect's runtime context, read only when Prefect names a run

    return forecast_name(flow_run.parameters)


def backfill_run_name() -> str:
    from prefect.runtime import flow_run  # lazy: Prefect's runtime context, read only when Prefect names a run

    return backfill_name(flow_run.parameters)
