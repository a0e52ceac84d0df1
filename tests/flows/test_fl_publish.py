"""Publishing: last, only what passed, forecasts and manifest together, dates by their Paris day,
each product in its own partitions.

The unit tests publish hand-made runs with publish_run. The others run the real nightly flow
under Prefect on the bundled sample and check the published dataset afterwards with
`e2e.published` (uniqueness across the dataset, rows in their origin's Paris date, the manifest
inside each object and matching it).
"""

import json
from datetime import date, datetime, timedelta

import pytest

from tests.helpers import output_line
from velibcast import storage as st
from velibcast.errors import ConfigError, DataError
from velibcast.flows import forecasts, manifest
from velibcast.flows.products import DAY_AHEAD, EVALUATION, Product
from velibcast.flows.publish import publish_run
from velibcast.run_records import SCHEMA_VERSION, Counts, Manifest, Outputs
from velibcast.timeutil import UTC, iso_minute

E = EVALUATION.name
D = date(2022, 5, 26)
STATIONS = {"16107": 35, "9020": 21}


def _object(storage, root, d=D):
    return storage.read_bytes(forecasts.partition_uri(root, E, d))


# ---------------------------------------------------------------- hand-made runs
def _forecasts(origins: list[datetime], run_id: str, product: Product, bikes: int = 3):
    sent = {f"{code}@{iso_minute(o)}": forecasts.SentRecord(code, o, cap, False)
            for code, cap in STATIONS.items() for o in origins}
    out = "\n".join(output_line(rid, [bikes], r.capacity) for rid, r in sent.items()).encode()
    return forecasts.join_predictions(sent, [("o.out", out)], "csv", "gbm-1", run_id, product)


def _publish(storage, root, product: Product, run_id: str, origins: list[datetime], whole_days=False, bikes=3):
    table = _forecasts(origins, run_id, product, bikes)
    n = len(origins) * len(STATIONS)
    counts = Counts(stations_seen=len(STATIONS), origins=len(origins), windows_emitted=n, windows_skipped=0,
                    records_rejected={}, objects_rejected={}, windows_skipped_by_reason={}, windows_unknown_station=0,
                    records_sent=n, predictions_written=n, forecast_rows=table.num_rows, station_origins_open=n,
                    coverage=1.0)
    m = Manifest(run_id=run_id, attempt=f"a-{run_id}", started_at="s", finished_at="f", parameters={}, counts=counts,
                 skips={}, data_quality=None, transform_input_layout={}, transform_job={}, timings_s={},
                 cost_estimate={"total": 0.0},
                 outputs=Outputs(forecast_parquet=forecasts.partition_uri(root, product.name, D),
                                 run_dir=manifest.run_dir(root, run_id),
                                 manifest_uri=manifest.attempt_uri(root, run_id, f"a-{run_id}")))
    return publish_run(storage, root, product.name, m, table, origins, whole_days)


def _hour(h: int) -> datetime:
    return datetime(2022, 5, 26, h, tzinfo=UTC)


def test_day_ahead_runs_of_one_date_merge_by_origin_in_their_own_partition(tmp_path, storage, e2e):
    """The night's day-ahead run and a later one (another origin) share the date's object; a rerun
    of an origin replaces only its rows; the evaluation of the same date is another object."""
    root = str(tmp_path)
    night = _publish(storage, root, DAY_AHEAD, "day-ahead-00", [_hour(0)])
    (po,) = night.outputs.partitions
    assert (po.action, po.rows_after, po.uri) == ("created", 2 * 24, forecasts.partition_uri(root, "day-ahead", D))
    assert po.uri.endswith("/forecasts/product=day-ahead/run_date=2022-05-26/part-0.parquet")

    later = _publish(storage, root, DAY_AHEAD, "day-ahead-06", [_hour(6)])
    (po,) = later.outputs.partitions
    assert (po.action, po.rows_replaced, po.rows_after, po.kept_runs) == ("merged", 0, 2 * 2 * 24, ["day-ahead-00"])

    before = storage.read_bytes(forecasts.partition_uri(root, "day-ahead", D))
    evaluation = _publish(storage, root, EVALUATION, "evaluation-26", [_hour(h) for h in range(0, 22)] +
                          [_hour(h) - timedelta(days=1) for h in (22, 23)], whole_days=True)
    assert [(p.action, p.rows_after) for p in evaluation.outputs.partitions] == [("created", 2 * 24 * 3)]
    assert storage.read_bytes(forecasts.partition_uri(root, "day-ahead", D)) == before, "another product's object"

    rerun = _publish(storage, root, DAY_AHEAD, "day-ahead-00", [_hour(0)], bikes=5)
    (po,) = rerun.outputs.partitions
    assert (po.action, po.rows_replaced, po.rows_after, po.kept_runs) == ("merged", 2 * 24, 2 * 2 * 24, ["day-ahead-06"])
    table, manifests = forecasts.read_partition_manifests(storage, root, "day-ahead", D)
    by_origin = {(r["origin_ts"].hour, r["run_id"], r["bikes_pred"]) for r in table.to_pylist()}
    assert by_origin == {(0, "day-ahead-00", 5), (6, "day-ahead-06", 3)}
    assert set(table.column("product").to_pylist()) == {"day-ahead"}
    assert sorted(manifests) == ["day-ahead-00", "day-ahead-06"]
    assert manifests["day-ahead-00"]["attempt"] == "a-day-ahead-00"
    assert manifests["day-ahead-00"]["counts"]["coverage"] == 1.0
    assert json.loads(storage.read_text(manifest.manifest_uri(root, "day-ahead-00"))) == manifests["day-ahead-00"]
    assert not list(storage.list(st.join(root, "forecasts", "_locks") + "/")), "every lock released"
    assert set(e2e.published(storage, root, "day-ahead")) == set(e2e.published(storage, root)) == {D}


def test_a_day_ahead_origin_at_paris_midnight_is_published_under_its_paris_date(tmp_path, storage):
    root = str(tmp_path)
    m = _publish(storage, root, DAY_AHEAD, "day-ahead-22", [_hour(0) - timedelta(hours=2)])
    assert [p.run_date for p in m.outputs.partitions] == ["2022-05-26"]
    assert forecasts.read_partition(storage, root, "day-ahead", D).num_rows == 2 * 24


# ---------------------------------------------------------------- real nightly runs
def test_a_failing_cost_estimate_replaces_nothing(tmp_path, storage, trained_model, e2e):
    """Why: an instance type with no price failed the run after the Parquet was replaced,
    with no manifest. Now the manifest is built (cost included) before anything is published."""
    root = str(tmp_path / "root")
    e2e.copy_snapshots(storage, root)
    good = e2e.run(e2e.config(tmp_path, root, trained_model["model_uri"]))
    before = _object(storage, root)
    # accepted by the config and by the job spec (a real TransformInstanceType), absent from pricing.yaml
    unpriced = e2e.config(tmp_path, root, trained_model["model_uri"], name="unpriced",
                          transform={"instance_type": "ml.m5.12xlarge"})
    with pytest.raises(ConfigError, match="no price for ml.m5.12xlarge"):
        e2e.run(unpriced)
    assert _object(storage, root) == before
    published = e2e.published(storage, root)
    table, manifests = published[date(2022, 5, 26)]
    assert set(table.column("run_id").to_pylist()) == {good["run_id"]}
    assert table.num_rows == good["counts"]["forecast_rows"] == manifests[good["run_id"]]["counts"]["forecast_rows"]
    # runs/<run_id>/manifest.json is the attempt the object holds
    current = json.loads(storage.read_text(good["manifest_uri"]))
    assert current["attempt"] == manifests[good["run_id"]]["attempt"]
    assert current["schema_version"] == manifests[good["run_id"]]["schema_version"] == SCHEMA_VERSION


def test_a_stage_record_of_the_wrong_type_fails_before_publishing(tmp_path, storage, trained_model, e2e):
    root = str(tmp_path / "root")
    e2e.copy_snapshots(storage, root)
    cfg = e2e.config(tmp_path, root, trained_model["model_uri"])
    good = e2e.run(cfg)
    before = _object(storage, root)
    uri = st.join(root, "runs", good["run_id"], "stages", "windows.json")
    rec = json.loads(storage.read_text(uri))
    rec["windows_emitted"] = "many"
    storage.write_text(uri, json.dumps(rec))
    with pytest.raises(DataError, match="windows.json.*'windows_emitted' is str"):
        e2e.run(cfg)
    del rec["windows_emitted"]
    storage.write_text(uri, json.dumps(rec))
    with pytest.raises(DataError, match="'windows_emitted' is missing"):
        e2e.run(cfg)
    assert _object(storage, root) == before
    e2e.published(storage, root)


def test_range_runs_publish_each_origin_under_its_paris_date_and_merge(tmp_path, storage, trained_model, e2e):
    """Why: a range across Paris midnight wrote 05-26 origins into run_date=2022-05-25 (duplicates),
    and a range replaced a whole day's object with its few hours."""
    root = str(tmp_path / "root")
    e2e.copy_snapshots(storage, root, first="2022-05-24T18", last="2022-05-26T09")
    cfg = e2e.config(tmp_path, root, trained_model["model_uri"])
    d25, d26 = date(2022, 5, 25), date(2022, 5, 26)

    a = e2e.run(cfg, start="2022-05-26T05:00Z", end="2022-05-26T08:00Z")
    assert [(p["run_date"], p["action"]) for p in a["partitions"]] == [("2022-05-26", "created")]
    rows_a = a["counts"]["forecast_rows"]

    # 20Z and 21Z are 22:00 and 23:00 on 05-25 in Paris; 22Z .. 01Z are 05-26
    b = e2e.run(cfg, start="2022-05-25T20:00Z", end="2022-05-26T02:00Z")
    by_date = {p["run_date"]: p for p in b["partitions"]}
    assert by_date["2022-05-25"]["action"] == "created"
    assert by_date["2022-05-26"]["action"] == "merged" and by_date["2022-05-26"]["rows_replaced"] == 0
    assert by_date["2022-05-26"]["kept_runs"] == [a["run_id"]]
    assert by_date["2022-05-26"]["rows_after"] == rows_a + by_date["2022-05-26"]["rows_of_this_run"]
    published = e2e.published(storage, root)
    assert set(published) == {d25, d26}
    assert {o.hour for o in published[d25][0].column("origin_ts").to_pylist()} == {20, 21}

    # a range inside one already published: replaces its own origin, keeps the rest
    c = e2e.run(cfg, start="2022-05-26T06:00Z", end="2022-05-26T07:00Z")
    (p,) = c["partitions"]
    assert p["action"] == "merged" and p["rows_replaced"] == p["rows_of_this_run"] > 0
    assert p["rows_after"] == by_date["2022-05-26"]["rows_after"]
    published = e2e.published(storage, root)
    t26 = published[d26][0]
    runs_at = {}
    for r in t26.select(["origin_ts", "run_id"]).to_pylist():
        runs_at.setdefault(r["origin_ts"].hour, set()).add(r["run_id"])
    assert runs_at[6] == {c["run_id"]} and runs_at[5] == runs_at[7] == {a["run_id"]}
    assert {runs_at[h].pop() for h in (22, 23, 0, 1)} == {b["run_id"]}


def test_run_date_with_a_range_is_refused_at_parse_time(tmp_path, capsys):
    from velibcast.flows.cli import main

    root = tmp_path / "root"
    with pytest.raises(SystemExit) as exc:
        main(["run", "--config", "configs/local.yaml", "--run-date", "2022-05-25",
              "--start", "2022-05-26T06:00Z", "--end", "2022-05-26T12:00Z"])
    assert exc.value.code == 2
    assert "--run-date and --start/--end exclude each other" in capsys.readouterr().err
    assert not root.exists()


def test_the_flow_refuses_a_run_date_with_a_range(tmp_path, storage, trained_model, e2e):
    from velibcast.flows.nightly import nightly

    root = str(tmp_path / "root")
    cfg = e2e.config(tmp_path, root, trained_model["model_uri"])
    with pytest.raises(ConfigError, match="not both"):
        nightly(config=cfg, run_date=date(2022, 5, 25), start=e2e.utc(e2e.START), end=e2e.utc(e2e.END))
    assert not list(storage.list(root + "/"))


def test_a_failing_optional_step_is_skipped_and_said(tmp_path, storage, trained_model, e2e):
    """Why: an unreadable partition of the previous night failed the run after publishing."""
    root = str(tmp_path / "root")
    e2e.copy_snapshots(storage, root)
    storage.write_bytes(forecasts.partition_uri(root, E, date(2022, 5, 25)), b"not parquet at all")
    res = e2e.run(e2e.config(tmp_path, root, trained_model["model_uri"]))
    assert [s["step"] for s in res["skipped"]] == ["scoring the previous night"]
    assert "run_date=2022-05-25" in res["skipped"][0]["error"] or "Parquet" in res["skipped"][0]["error"]
    assert res["previous_night_score"]["status"] == "failed"
    table = forecasts.read_partition(storage, root, E, D)
    assert table.num_rows == res["counts"]["forecast_rows"] > 0
    storage.delete(forecasts.partition_uri(root, E, date(2022, 5, 25)))  # not ours to check: planted garbage
    e2e.published(storage, root)


def test_a_broken_model_is_named(tmp_path, storage, trained_model, e2e):
    """Why: a broken model.tar.gz broke every run with an error that named no URI."""
    root = str(tmp_path / "root")
    e2e.copy_snapshots(storage, root)
    broken = st.join(root, "models", "zz-broken", "model.tar.gz")
    storage.write_bytes(broken, b"\x1f\x8b truncated")
    with pytest.raises(DataError) as exc:
        e2e.run(e2e.config(tmp_path, root, broken))
    assert broken in str(exc.value) and "velibcast train" in str(exc.value)
    assert not list(storage.list(st.join(root, "forecasts") + "/"))


def test_credentials_in_an_endpoint_url_are_redacted_everywhere(tmp_path, storage, trained_model, e2e):
    """Why: `store.s3.endpoint_url: http://KEY:SECRET@host` was written verbatim into the manifest."""
    import pyarrow.parquet as pq

    root = str(tmp_path / "root")
    e2e.copy_snapshots(storage, root)
    cfg = e2e.config(tmp_path, root, trained_model["model_uri"],
                     store={"s3": {"endpoint_url": "http://AKIDinURL:SECRETinURL@127.0.0.1:9"}})
    res = e2e.run(cfg)
    assert "SECRETinURL" not in json.dumps(res, default=str)
    seen = 0
    for p in (tmp_path / "root").rglob("*"):
        if p.is_file():
            seen += 1
            blob = p.read_bytes()
            if p.suffix == ".parquet":
                blob += b"".join((pq.read_table(p).schema.metadata or {}).values())
            assert b"SECRETinURL" not in blob and b"AKIDinURL" not in blob, p
    assert seen > 10
    m = json.loads(storage.read_text(res["manifest_uri"]))
    assert m["parameters"]["config"]["store"]["s3"]["endpoint_url"] == "http://***@127.0.0.1:9"
