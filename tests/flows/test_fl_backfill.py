"""The backfill flow under Prefect: one child nightly run per date, complete dates skipped."""

import gzip
import json
from datetime import date, timedelta

import pyarrow as pa
import pytest

from tests.core.test_downstream_readers import night
from tests.helpers import read_accuracy
from velibcast.config import load_config
from velibcast.errors import ConfigError
from velibcast.flows import forecasts, manifest
from velibcast.flows.backfill import backfill, is_complete
from velibcast.flows.products import DAY_AHEAD, EVALUATION
from velibcast.flows.run_identity import RunSpec, run_id_for
from velibcast.flows.run_model import ModelInfo

D = date(2022, 5, 26)
E = EVALUATION.name


def test_a_date_is_complete_only_when_published_whole_by_the_run_this_config_would_make(tmp_path, storage, e2e):
    root = str(tmp_path / "root")
    cfg = load_config(e2e.config(tmp_path, root, "unused-model-uri"))
    model = ModelInfo("gbm-1", {}, "a" * 64)
    expected = run_id_for(RunSpec(D), cfg.hash(), model.version)
    ours = night(D, expected)
    m = {"run_id": expected, "attempt": "a1", "counts": {"forecast_rows": ours.num_rows},
         "parameters": {"model_sha256": model.sha256}}
    assert not is_complete(cfg, storage, D, model), "nothing published yet"
    forecasts.publish(storage, cfg.root, E, D, night(D, "another-run"), {"another-run": {**m, "run_id": "another-run"}})
    assert not is_complete(cfg, storage, D, model), "published by another run (config or model)"
    forecasts.publish(storage, cfg.root, E, D, pa.concat_tables([ours, night(D, "another-run")]), {expected: m})
    assert not is_complete(cfg, storage, D, model), "two runs mixed in one partition"
    forecasts.publish(storage, cfg.root, E, D, ours)
    assert not is_complete(cfg, storage, D, model), "no manifest inside the object"
    forecasts.publish(storage, cfg.root, E, D, ours, {expected: m})
    assert not is_complete(cfg, storage, D, model), "killed before runs/<run_id>/manifest.json named the attempt"
    storage.write_text(manifest.manifest_uri(cfg.root, expected), '{"attempt": "a0"}')
    assert not is_complete(cfg, storage, D, model), "manifest.json names an earlier attempt"
    storage.write_text(manifest.manifest_uri(cfg.root, expected), '{"attempt": "a1"}')
    assert is_complete(cfg, storage, D, model)
    assert not is_complete(cfg, storage, D, ModelInfo("gbm-2", {}, model.sha256)), "a new model makes the date incomplete"
    assert not is_complete(cfg, storage, D, ModelInfo("gbm-1", {}, "b" * 64)), (
        "another model.tar.gz under the same version makes the date incomplete")


def test_a_backfill_counts_only_the_evaluation_product(tmp_path, storage, e2e):
    """A backfill recomputes past days as the evaluation product: a day-ahead forecast published
    under the same date, even by a run of the same name, does not make the date done."""
    root = str(tmp_path / "root")
    cfg = load_config(e2e.config(tmp_path, root, "unused-model-uri"))
    model = ModelInfo("gbm-1", {}, "a" * 64)
    expected = run_id_for(RunSpec(D), cfg.hash(), model.version)
    day_ahead = night(D, expected, origins=1, product=DAY_AHEAD)
    forecasts.publish(storage, cfg.root, DAY_AHEAD.name, D, day_ahead,
                      {expected: {"run_id": expected, "attempt": "a1", "counts": {"forecast_rows": day_ahead.num_rows},
                                  "parameters": {"model_sha256": model.sha256}}})
    storage.write_text(manifest.manifest_uri(cfg.root, expected), '{"attempt": "a1"}')
    assert not is_complete(cfg, storage, D, model)


def test_the_flow_takes_a_half_open_date_range_like_the_cli(tmp_path, e2e):
    cfg_path = e2e.config(tmp_path, str(tmp_path / "root"), "unused-model-uri")
    with pytest.raises(ConfigError, match=r"end_date 2022-05-26 must be after start_date 2022-05-26 \(ranges are half-open \[start, end\).*"
                                          "one night: end_date 2022-05-27"):
        backfill(start_date=D, end_date=D, config=cfg_path)


def test_backfill_runs_each_date_once_then_skips_it(tmp_path, storage, trained_model, e2e):
    root = str(tmp_path / "root")
    e2e.copy_snapshots(storage, root)
    # the test store ends at 09Z: the day's later origins have no windows, which a real night refuses
    cfg_path = e2e.config(tmp_path, root, trained_model["model_uri"], run={"min_station_coverage": 0.0})
    first = backfill(start_date=D, end_date=D + timedelta(days=1), config=cfg_path)
    assert first["summary"] == {"completed": 1, "skipped": 0, "failed": 0}, first
    (row,) = first["dates"]
    assert row["run_date"] == D.isoformat() and row["forecast_rows"] > 0
    table = forecasts.read_partition(storage, root, E, D)
    assert set(table.column("run_id").to_pylist()) == {row["run_id"]}
    assert table.num_rows == row["forecast_rows"]

    again = backfill(start_date=D, end_date=D + timedelta(days=1), config=cfg_path)
    assert again["summary"] == {"completed": 0, "skipped": 1, "failed": 0}, again


def few_stations(n):
    """A snapshot transform keeping the first n stations of the first object it sees: two whole nights stay fast."""
    keep = set()

    def cut(name, data):
        lines = gzip.decompress(data).splitlines()
        if not keep:
            keep.update(json.loads(ln)["stationcode"] for ln in lines[:n])
        return gzip.compress(b"\n".join(ln for ln in lines if json.loads(ln)["stationcode"] in keep) + b"\n")

    return cut


def test_backfill_scores_each_date_after_it_and_the_night_before_are_published(tmp_path, storage, trained_model, e2e):
    """Two nights side by side (max_concurrency 2) under Prefect: no child scores its previous night
    while that night may still be publishing; the backfill scores each date once the child runs of that
    date and of the day before have ended, from the forecasts they published."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, FlowRunFilterParentFlowRunId

    root = str(tmp_path / "root")
    # 05-25's first origin (05-24T22Z) needs 24 h of history; 05-26's last target (05-27T00Z) needs actuals.
    e2e.copy_snapshots(storage, root, few_stations(30), first="2022-05-23T20", last="2022-05-26T23")
    cfg_path = e2e.config(tmp_path, root, trained_model["model_uri"], run={"min_station_coverage": 0.0})
    days = [date(2022, 5, 25), date(2022, 5, 26)]
    state = backfill(start_date=days[0], end_date=days[1] + timedelta(days=1), config=cfg_path, max_concurrency=2,
                     return_state=True)
    res = state.result()
    assert res["summary"] == {"completed": 2, "skipped": 0, "failed": 0}, res
    # 05-26's last targets are not settled in the sample (it ends 05-26T23:35Z): scored so far, written.
    assert [r["score"] for r in res["dates"]] == ["scored", "partial"], res

    with get_client(sync_client=True) as client:
        flow_run_id = state.state_details.flow_run_id
        tasks = {t.name: t for t in client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))}
        children = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[flow_run_id])))
        child_tasks = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[c.id for c in children])))
    assert sorted(c.name for c in children) == ["nightly-2022-05-25", "nightly-2022-05-26"]
    assert not [t.name for t in child_tasks if t.name.startswith("score")], "a child scored while others publish"
    for d in days:
        published = forecasts.read_partition(storage, root, E, d)
        accuracy = read_accuracy(storage, root, d, E)
        assert set(accuracy.column("run_id").to_pylist()) == set(published.column("run_id").to_pylist())
        assert set(accuracy.column("forecast_rows").to_pylist()) == {published.num_rows // 3}, "one row per horizon"
        scored = tasks[f"score-{d}"]
        for before in (d - timedelta(days=1), d):
            child = tasks.get(f"child-run-{before}")
            if child is not None:
                assert child.end_time <= scored.start_time, f"{d} scored before {before} was published"
                assert child.end_time <= accuracy.column("scored_at")[0].as_py()
