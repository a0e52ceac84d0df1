"""Flow run names a user can read in the Prefect UI: nightly-2022-05-26, day-ahead-2022-05-26T0030Z,
backfill-2022-05-25..2022-05-27.

Prefect calls these when a run starts (flow_run_name=); they read the run's parameters.
"""

from __future__ import annotations

from datetime import date, datetime

from velibcast.config import load_config
from velibcast.flows.run_identity import yesterday_in_paris
from velibcast.timeutil import UTC, name_minute


def _as_date(v) -> date | None:
    if v is None or isinstance(v, date):
        return v
    return date.fromisoformat(str(v)[:10])


def _as_time(v) -> datetime | None:
    if v is None or isinstance(v, datetime):
        return v
    return datetime.fromisoformat(str(v).replace("Z", "+00:00"))


def nightly_name(params: dict) -> str:
    start, end = _as_time(params.get("start")), _as_time(params.get("end"))
    if start is not None and end is not None:
        return f"nightly-{name_minute(start)}-{name_minute(end)}"
    run_date = _as_date(params.get("run_date"))
    if run_date is None:
        run_date = load_config(params.get("config")).run.default_run_date or yesterday_in_paris()
    return f"nightly-{run_date.isoformat()}"


def forecast_name(params: dict) -> str:
    as_of = _as_time(params.get("as_of"))
    if as_of is None:  # the flow then runs as of the config's default_as_of, if it has one
        as_of = load_config(params.get("config")).run.default_as_of
    return f"{params.get('product', 'day-ahead')}-{name_minute(as_of.astimezone(UTC)) if as_of else 'now'}"


def backfill_name(params: dict) -> str:
    return f"backfill-{_as_date(params['start_date'])}..{_as_date(params['end_date'])}"


def nightly_run_name() -> str:
    from prefect.runtime import flow_run  # lazy: Prefect's runtime context, read only when Prefect names a run

    return nightly_name(flow_run.parameters)


def forecast_run_name() -> str:
    from prefect.runtime import flow_run  # lazy: Prefect's runtime context, read only when Prefect names a run

    return forecast_name(flow_run.parameters)


def backfill_run_name() -> str:
    from prefect.runtime import flow_run  # lazy: Prefect's runtime context, read only when Prefect names a run

    return backfill_name(flow_run.parameters)
