"""The backfill flow under Prefect: one child nightly run per date, complete dates skipped."""

from datetime import date

import pyarrow as pa

from tests.core.test_downstream_readers import night
from velibcast.config import load_config
from velibcast.flows import forecasts, manifest
from velibcast.flows.backfill import backfill, is_complete
from velibcast.flows.run_identity import RunSpec, run_id_for

D = date(2022, 5, 26)


def test_a_date_is_complete_only_when_published_whole_by_the_run_this_config_would_make(tmp_path, storage, e2e):
    root = str(tmp_path / "root")
    cfg = load_config(e2e.config(tmp_path, root, "unused-model-uri"))
    expected = run_id_for(RunSpec(D), cfg.hash(), "lstm-1")
    ours = night(D, expected)
    m = {"run_id": expected, "attempt": "a1", "counts": {"forecast_rows": ours.num_rows}}
    assert not is_complete(cfg, storage, D, "lstm-1"), "nothing published yet"
    forecasts.publish(storage, cfg.root, D, night(D, "another-run"), {"another-run": {**m, "run_id": "another-run"}})
    assert not is_complete(cfg, storage, D, "lstm-1"), "published by another run (config or model)"
    forecasts.publish(storage, cfg.root, D, pa.concat_tables([ours, night(D, "another-run")]), {expected: m})
    assert not is_complete(cfg, storage, D, "lstm-1"), "two runs mixed in one partition"
    forecasts.publish(storage, cfg.root, D, ours)
    assert not is_complete(cfg, storage, D, "lstm-1"), "no manifest inside the object"
    forecasts.publish(storage, cfg.root, D, ours, {expected: m})
    assert not is_complete(cfg, storage, D, "lstm-1"), "killed before runs/<run_id>/manifest.json named the attempt"
    storage.write_text(manifest.manifest_uri(cfg.root, expected), '{"attempt": "a0"}')
    assert not is_complete(cfg, storage, D, "lstm-1"), "manifest.json names an earlier attempt"
    storage.write_text(manifest.manifest_uri(cfg.root, expected), '{"attempt": "a1"}')
    assert is_complete(cfg, storage, D, "lstm-1")
    assert not is_complete(cfg, storage, D, "lstm-2"), "a new model makes the date incomplete"


def test_backfill_runs_each_date_once_then_skips_it(tmp_path, storage, trained_model, e2e):
    root = str(tmp_path / "root")
    e2e.copy_snapshots(storage, root)
    # the test store ends at 09Z: the day's later origins have no windows, which a real night refuses
    cfg_path = e2e.config(tmp_path, root, trained_model["model_uri"], run={"min_station_coverage": 0.0})
    first = backfill(start_date=D, end_date=D, config=cfg_path)
    assert first["summary"] == {"completed": 1, "skipped": 0, "failed": 0}, first
    (row,) = first["dates"]
    assert row["run_date"] == D.isoformat() and row["forecast_rows"] > 0
    table = forecasts.read_partition(storage, root, D)
    assert set(table.column("run_id").to_pylist()) == {row["run_id"]}
    assert table.num_rows == row["forecast_rows"]

    again = backfill(start_date=D, end_date=D, config=cfg_path)
    assert again["summary"] == {"completed": 0, "skipped": 1, "failed": 0}, again
