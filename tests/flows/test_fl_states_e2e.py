"""The nightly flow on a store whose hourly states are ingested publishes the forecasts it publishes
from the raw captures alone, reading the settled hours from the states."""

import json
from datetime import datetime

from velibcast.datasets import ingest as ing
from velibcast.timeutil import UTC


def test_a_run_over_ingested_states_publishes_the_forecasts_of_the_raw_captures(tmp_path, storage, trained_model, e2e):
    raw_root, states_root = str(tmp_path / "raw"), str(tmp_path / "states")
    e2e.copy_snapshots(storage, raw_root)
    e2e.copy_snapshots(storage, states_root)
    ing.ingest(storage, states_root, states_root, datetime(2022, 5, 25, tzinfo=UTC), datetime(2022, 5, 27, tzinfo=UTC))
    raw = e2e.run(e2e.config(tmp_path, raw_root, trained_model["model_uri"], name="raw"))
    stored = e2e.run(e2e.config(tmp_path, states_root, trained_model["model_uri"], name="states"))
    [(day, (raw_table, _))] = e2e.published(storage, raw_root).items()
    stored_table = e2e.published(storage, states_root)[day][0]
    assert stored_table.drop(["run_id"]).to_pylist() == raw_table.drop(["run_id"]).to_pylist()
    assert raw_table.num_rows > 1000
    # the windows stage parsed only captures of hours the states do not settle: none here
    quality = [json.loads(storage.read_text(f"{root}/runs/{r['run_id']}/manifest.json"))["data_quality"]
               for root, r in ((raw_root, raw), (states_root, stored))]
    assert quality[0]["snapshots"] > 20 and quality[1]["snapshots"] < quality[0]["snapshots"]
