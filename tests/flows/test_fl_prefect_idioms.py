"""Prefect as its users know it: retries from the error taxonomy, timeouts from the config, named
flow runs, the runtime's lines in the run log, artifacts that link to the outputs."""

from datetime import date, datetime

import pytest
from prefect import flow, task

from velibcast.config import load_config
from velibcast.errors import ConfigError, TransientError
from velibcast.flows.run_names import backfill_name, forecast_name, nightly_name
from velibcast.flows.task_policy import RETRY_OPTS, timed
from velibcast.timeutil import UTC, name_minute


def _flaky(error, fail_times):
    calls = []

    @task(**{**RETRY_OPTS, "retry_delay_seconds": 0})
    def stage():
        calls.append(1)
        if len(calls) <= fail_times:
            raise error
        return "done"

    @flow
    def run():
        return stage()

    return run, calls


def test_transient_errors_are_retried_by_prefect():
    run, calls = _flaky(TransientError("S3 SlowDown on s3://b/k"), fail_times=2)
    assert run() == "done" and len(calls) == 3


def test_terminal_errors_fail_at_once():
    run, calls = _flaky(ConfigError("transform.backend='lokal'"), fail_times=1)
    with pytest.raises(ConfigError):
        run()
    assert len(calls) == 1


def test_stage_timeouts_come_from_the_config():
    from velibcast.flows.nightly import transform_task, windows_task

    cfg = load_config(None, {"run": {"timeouts_s": {"transform": 90}}})
    assert timed(transform_task, cfg, "transform").timeout_seconds == 90
    assert timed(windows_task, cfg, "windows").timeout_seconds == cfg.run.timeouts_s.windows > 0
    with pytest.raises(ConfigError, match="run.timeouts_s.windows"):
        load_config(None, {"run": {"timeouts_s": {"windows": 0}}})


def test_flow_run_names():
    assert nightly_name({"run_date": date(2022, 5, 26)}) == "nightly-2022-05-26"
    assert nightly_name({"run_date": "2022-05-26"}) == "nightly-2022-05-26"
    default = load_config("configs/local.yaml").run.default_run_date
    assert default is not None
    assert nightly_name({"run_date": None, "config": "configs/local.yaml"}) == f"nightly-{default.isoformat()}"  # the config's day
    start, end = datetime(2022, 5, 26, 6, tzinfo=UTC), datetime(2022, 5, 26, 7, tzinfo=UTC)
    assert nightly_name({"start": start, "end": end}) == "nightly-2022-05-26T0600Z-2022-05-26T0700Z"
    assert backfill_name({"start_date": date(2022, 5, 25), "end_date": "2022-05-26"}) == "backfill-2022-05-25..2022-05-26"


def test_forecast_run_names_say_the_product_and_the_as_of_minute_in_utc():
    assert forecast_name({"product": "nowcast", "as_of": "2022-05-26T02:30+02:00"}) == "nowcast-2022-05-26T0030Z"
    as_of = datetime(2022, 5, 26, 0, 30, tzinfo=UTC)
    assert forecast_name({"product": "day-ahead", "as_of": as_of}) == "day-ahead-2022-05-26T0030Z"
    assert forecast_name({"as_of": as_of}) == "day-ahead-2022-05-26T0030Z", "the flow's default product"
    # no as_of: the config's default_as_of, which the flow then runs as of; with none, now
    default = load_config("configs/local.yaml").run.default_as_of
    assert default is not None
    expected = default.astimezone(UTC)
    assert forecast_name({"product": "nowcast", "as_of": None, "config": "configs/local.yaml"}) == \
        f"nowcast-{name_minute(expected)}"
    assert forecast_name({"product": "nowcast", "as_of": None, "config": None}) == "nowcast-now"


def test_a_run_is_named_logs_through_prefect_and_links_its_outputs(tmp_path, storage, trained_model, e2e):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        FlowRunFilter,
        FlowRunFilterName,
        LogFilter,
        LogFilterFlowRunId,
    )

    root = str(tmp_path / "root")
    e2e.copy_snapshots(storage, root)
    res = e2e.run(e2e.config(tmp_path, root, trained_model["model_uri"]))
    name = "nightly-2022-05-26T0500Z-2022-05-26T0800Z"
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[name])))
        run = max(runs, key=lambda r: r.created)
        logs = [l.message for l in client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run.id])),
                                                    limit=200)]
        arts = client.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run.id])))
    assert any("input objects done" in l for l in logs), logs[:20]
    assert any("[sagemaker logs]" in l for l in logs)  # the runtime's own lines, from its threads
    by_key = {a.key.split("-2022")[0]: a for a in arts if a.key}
    assert res["manifest_uri"] in by_key["run-manifest"].data
    if res.get("report_png"):
        assert res["report_png"] in by_key["run-report-png"].data
    quality = by_key["run-data-quality"]
    assert quality.type == "markdown" and "stations seen" in quality.data and "| snapshots read |" in quality.data
