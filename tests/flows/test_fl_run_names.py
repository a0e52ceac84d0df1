"""A nightly run given no run date forecasts the config's run.default_run_date, else the day before the
one it started on in Europe/Paris, and is named for that day. One rule decides it
(flows/preflight.default_run_date) at one instant, the flow run's expected start time: a run started a
second before midnight is not named for one day and run for the next, whenever its steps run."""

import asyncio
from datetime import date, datetime

import pytest
from prefect.client.orchestration import get_client
from prefect.states import Scheduled

from tests.flows.test_fl_cli import config
from velibcast.config import load_config
from velibcast.flows import preflight
from velibcast.flows.run_names import forecast_name, nightly_name
from velibcast.timeutil import UTC

# the flow run's expected start (a Paris wall-clock time with its offset), the day it forecasts
STARTS = [
    ("2022-05-26T23:59:59+02:00", date(2022, 5, 25)),
    ("2022-05-27T00:00:00+02:00", date(2022, 5, 26)),
    ("2022-05-26T01:30:00+02:00", date(2022, 5, 25)),  # UTC's 25th, Paris' 26th
    ("2022-10-30T02:30:00+02:00", date(2022, 10, 29)),  # autumn: the first 02:30
    ("2022-10-30T02:30:00+01:00", date(2022, 10, 29)),  # and the repeated one
    ("2023-03-26T00:30:00+01:00", date(2023, 3, 25)),   # spring, before the change
    ("2023-03-26T03:30:00+02:00", date(2023, 3, 25)),   # and after it
]


@pytest.mark.parametrize("started, day", STARTS, ids=[s for s, _ in STARTS])
def test_the_name_and_the_run_take_the_same_default_day_at_the_flow_runs_start(tmp_path, started, day):
    path = config(tmp_path, {"store": {"root": str(tmp_path / "root")}})
    now = datetime.fromisoformat(started)
    assert preflight.default_run_date(load_config(path), now) == day
    assert nightly_name({"run_date": None, "config": path}, now) == f"nightly-{day.isoformat()}"
    # the config's day wins at any time
    dated = config(tmp_path, {"run": {"default_run_date": "2022-05-20"}}, "dated.yaml")
    assert nightly_name({"config": dated}, now) == "nightly-2022-05-20"
    assert preflight.default_run_date(load_config(dated), now) == date(2022, 5, 20)


def test_a_forecast_run_is_named_for_the_as_of_time_it_runs_at(tmp_path):
    as_of = config(tmp_path, {"run": {"default_as_of": "2022-05-25T02:30+02:00"}})
    assert preflight.configured_as_of(load_config(as_of)) == datetime(2022, 5, 25, 0, 30, tzinfo=UTC)
    assert forecast_name({"product": "nowcast", "config": as_of}) == "nowcast-2022-05-25T0030Z"
    given = datetime(2022, 5, 26, 0, 30, tzinfo=UTC)
    assert preflight.configured_as_of(load_config(as_of), given) == given
    assert forecast_name({"as_of": given, "config": as_of}) == "day-ahead-2022-05-26T0030Z"
    unset = config(tmp_path, {"store": {"root": str(tmp_path / "root")}}, "unset.yaml")
    assert preflight.configured_as_of(load_config(unset)) is None  # the run takes the time it starts
    assert forecast_name({"product": "nowcast", "config": unset}) == "nowcast-now"


def _flow_run_started_at(flow, parameters: dict, expected_start: datetime):
    async def create():
        async with get_client() as client:
            return await client.create_flow_run(flow, parameters=parameters, state=Scheduled(scheduled_time=expected_start))

    return asyncio.run(create())


def _name_of(flow_run_id) -> str:
    async def read():
        async with get_client() as client:
            return (await client.read_flow_run(flow_run_id)).name

    return asyncio.run(read())


def test_a_nightly_run_started_a_second_before_midnight_forecasts_and_is_named_for_the_eve(
        tmp_path, storage, trained_model, e2e):
    from prefect.flow_engine import run_flow

    from velibcast.flows.nightly import nightly

    root = str(tmp_path / "root")
    e2e.copy_snapshots(storage, root, first="2022-05-24T00", last="2022-05-26T00")
    cfg = e2e.config(tmp_path, root, trained_model["model_uri"])  # no run.default_run_date
    params = {"config": cfg}
    flow_run = _flow_run_started_at(nightly, params, datetime.fromisoformat("2022-05-26T23:59:59+02:00"))
    res = run_flow(nightly, flow_run=flow_run, parameters=params)  # its steps run in 2026, long after midnight
    assert _name_of(flow_run.id) == "nightly-2022-05-25"
    assert [p["run_date"] for p in res["partitions"]] == ["2022-05-25"]
    assert set(e2e.published(storage, root)) == {date(2022, 5, 25)}


def test_the_command_runs_the_day_its_checks_decided_when_the_clock_crosses_midnight_between_them(
        tmp_path, storage, trained_model, e2e, monkeypatch):
    from velibcast.flows import cli

    root = str(tmp_path / "root")
    e2e.copy_snapshots(storage, root, first="2022-05-24T00", last="2022-05-26T00")
    cfg = e2e.config(tmp_path, root, trained_model["model_uri"])  # no run.default_run_date
    # the clock: the checks decide before midnight, anything deciding later gets the next day
    days = iter([date(2022, 5, 25)])
    monkeypatch.setattr(preflight, "default_run_date", lambda cfg, now=None: next(days, date(2022, 5, 26)))
    assert cli.cmd_run(cli.build_parser().parse_args(["run", "--product", "evaluation", "--config", cfg])) == 0
    assert set(e2e.published(storage, root)) == {date(2022, 5, 25)}
