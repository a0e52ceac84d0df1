"""Accuracy scoring and the run PNG on a small hand-built night whose errors are known."""

from datetime import date, datetime, timedelta

import pyarrow.dataset as pads
import pytest

from tests.helpers import read_accuracy
from velibcast import storage as st
from velibcast.config import load_config
from velibcast.datasets.snapshots import write_snapshot
from velibcast.datasets.windows import origins_for_run_date
from velibcast.flows import forecasts, report_png, score
from velibcast.timeutil import iso_minute, key_time

RUN_DATE = date(2022, 5, 26)
ORIGINS = origins_for_run_date(RUN_DATE)           # 2022-05-25T22Z .. 2022-05-26T21Z
FIRST, LAST_TARGET = ORIGINS[0], ORIGINS[-1] + timedelta(hours=3)
CAP = 40
# C vanishes from the captures for 5 hours (> max_staleness 3 h), Z is never captured.
C_GONE = [ORIGINS[10] + timedelta(hours=k) for k in range(1, 6)]


def bikes(code: str, t: datetime) -> int:
    k = int((t - FIRST).total_seconds() // 3600)
    if code == "A":
        return [2, 6, 12, 18, 20, 16, 9, 4][k % 8]   # busy
    if code == "U":
        return 5 + (k % 4)                           # unknown to the model
    return 7                                         # B and C: quiet


def record(code: str, t: datetime) -> dict:
    n = bikes(code, t)
    return {"stationcode": code, "name": f"station {code}", "capacity": CAP, "numbikesavailable": n,
            "numdocksavailable": CAP - n, "mechanical": n, "ebike": 0, "is_installed": "OUI",
            "is_renting": "OUI", "is_returning": "OUI", "coordonnees_geo": {"lat": 48.85, "lon": 2.35}}


def write_captures(storage, root, until: datetime) -> None:
    t = FIRST - timedelta(hours=2)
    while t <= until:
        codes = ["A", "B", "U"] + ([] if t in C_GONE else ["C"])
        write_snapshot(storage, root, t, [record(c, t) for c in codes])
        t += timedelta(hours=1)


def publish_night(storage, root, delta=lambda h: h) -> None:
    """The model predicts actual + delta(h): its MAE at horizon h is delta(h) where scorable."""
    sent, lines = {}, []
    for t in ORIGINS:
        for code in ("A", "B", "C", "U", "Z"):
            rid = f"{code}@{iso_minute(t)}"
            sent[rid] = forecasts.SentRecord(code, t, CAP, code == "U")
            preds = [bikes(code, t + timedelta(hours=h)) + delta(h) for h in forecasts.HORIZONS]
            lines.append(",".join([rid, *map(str, preds)]))
    table = forecasts.join_predictions(sent, [("o.out", "\n".join(lines).encode())], "csv", "v1", "run-1")
    forecasts.publish(storage, root, RUN_DATE, table)


def cfg_for(root):
    return load_config(None, overrides={"store": {"root": root}})


def expected_persistence_mae(h: int, codes=("A", "B", "U")) -> float:
    errs = [abs(bikes(c, t + timedelta(hours=h)) - bikes(c, t)) for c in codes for t in ORIGINS]
    return sum(errs) / len(errs)


def test_score_gives_model_and_persistence_mae_per_horizon(any_root, storage):
    write_captures(storage, any_root, LAST_TARGET + timedelta(hours=3))
    publish_night(storage, any_root)
    res = score.score_run(storage, cfg_for(any_root), RUN_DATE)
    assert res["status"] == score.SCORED, res
    n = len(ORIGINS)
    assert res["forecast_rows"] == 5 * 3 * n
    # Z is never captured; C is stale at targets in its gap, and has no origin value for persistence there.
    reasons = res["unscorable_by_reason"]
    assert reasons[score.NO_ACTUAL] == 3 * n
    assert reasons[score.STALE_ACTUAL] > 0 and reasons[score.NO_ORIGIN_VALUE] > 0
    assert res["scored_rows"] + res["unscorable_rows"] == res["forecast_rows"]

    acc = read_accuracy(storage, any_root, RUN_DATE).to_pylist()
    assert [r["horizon_h"] for r in acc] == [1, 2, 3]
    for r in acc:
        assert r["mae_model"] == pytest.approx(r["horizon_h"]) and r["bias_model"] == pytest.approx(r["horizon_h"])
        assert r["run_id"] == "run-1" and r["status"] == score.SCORED
        assert r["scored_rows"] + sum(r[f"unscorable_{x}"] for x in score.REASONS) == r["forecast_rows"] == 5 * n
    # Without C (whose gap removes a few rows), persistence is checked exactly.
    assert acc[0]["mae_persistence"] > 0


def test_persistence_mae_is_exact_on_fully_observed_stations(tmp_path, storage):
    root = str(tmp_path / "root")
    write_captures(storage, root, LAST_TARGET + timedelta(hours=3))
    publish_night(storage, root)
    df = score.attach_actuals(forecasts.read_partition(storage, root, RUN_DATE),
                              score.load_grid(storage, cfg_for(root), score.hours_of(
                                  forecasts.read_partition(storage, root, RUN_DATE)))[0], None)
    summary = score.summarise(df[df["station_code"].isin(["A", "B", "U"])])
    for r in summary:
        assert r["mae_persistence"] == pytest.approx(expected_persistence_mae(r["horizon_h"]))
        assert r["scored_rows"] == 3 * len(ORIGINS)


def test_rescoring_replaces_the_date_and_partial_becomes_scored(tmp_path, storage):
    root = str(tmp_path / "root")
    publish_night(storage, root)
    assert score.score_run(storage, cfg_for(root), date(2022, 5, 27))["status"] == score.NO_FORECASTS

    write_captures(storage, root, FIRST + timedelta(hours=2))     # first target not settled yet
    res = score.score_run(storage, cfg_for(root), RUN_DATE)
    assert res["status"] == score.NOT_YET and "score again later" in res["message"]
    assert not storage.exists(score.accuracy_uri(root, RUN_DATE))

    write_captures(storage, root, ORIGINS[12])
    res = score.score_run(storage, cfg_for(root), RUN_DATE)
    assert res["status"] == score.PARTIAL and res["unscorable_by_reason"][score.NOT_SETTLED] > 0

    write_captures(storage, root, LAST_TARGET + timedelta(hours=3))
    res = score.score_run(storage, cfg_for(root), RUN_DATE)
    assert res["status"] == score.SCORED and score.NOT_SETTLED not in res["unscorable_by_reason"]
    ds = pads.dataset(str(tmp_path / "root" / "accuracy"), format="parquet", partitioning="hive")
    t = ds.to_table()
    assert t.num_rows == 3 and set(t.column("status").to_pylist()) == {score.SCORED}


def test_actuals_table_can_replace_the_store(tmp_path, storage):
    root = str(tmp_path / "root")
    publish_night(storage, root, delta=lambda h: 0)
    hours = score.hours_of(forecasts.read_partition(storage, root, RUN_DATE))
    actuals = [{"station_code": c, "ts": t, "bikes": bikes(c, t)} for c in ("A", "B", "U") for t in hours]
    grid = score.grid_from_actuals(actuals)
    df = score.attach_actuals(forecasts.read_partition(storage, root, RUN_DATE), grid, None)
    summary = score.summarise(df)
    assert all(r["mae_model"] == 0 for r in summary)
    assert (df["reason"] == score.NO_ACTUAL).sum() == 2 * 3 * len(ORIGINS)   # C and Z


def test_png_beside_the_manifest_shows_busiest_and_unknown_station(tmp_path, storage):
    root = str(tmp_path / "root")
    write_captures(storage, root, LAST_TARGET + timedelta(hours=3))
    publish_night(storage, root, delta=lambda h: h - 2)
    res = report_png.render_run_png(storage, root, RUN_DATE)
    assert res["uri"] == st.join(root, "runs", "run-1", "report.png")
    png = storage.read_bytes(res["uri"])
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
    assert res["stations"][0] == "A" and res["stations"][-1] == "U"
    assert [r["horizon_h"] for r in res["by_horizon"]] == [1, 2, 3]
    assert res["by_horizon"][2]["mae_model"] == pytest.approx(1.0)


def test_png_from_given_actuals_on_s3(s3_root, storage):
    publish_night(storage, s3_root)
    hours = score.hours_of(forecasts.read_partition(storage, s3_root, RUN_DATE))
    actuals = [{"station_code": c, "ts": t, "bikes": bikes(c, t)} for c in ("A", "B", "U") for t in hours]
    out = st.join(s3_root, "elsewhere", "night.png")
    res = report_png.render_run_png(storage, s3_root, RUN_DATE, out, grid_or_actuals=actuals)
    assert res["uri"] == out and storage.read_bytes(out)[:4] == b"\x89PNG"


def test_png_map_colours_stations_by_the_forecast_change_over_3_hours(tmp_path, storage):
    root = str(tmp_path / "root")
    write_captures(storage, root, LAST_TARGET + timedelta(hours=3))
    publish_night(storage, root, delta=lambda h: h - 2)   # the +3 h forecast is the actual + 1
    res = report_png.render_run_png(storage, root, RUN_DATE)
    m = res["map"]
    t = ORIGINS[-1]
    assert m["origin"] == t.isoformat().replace("+00:00", "+00:00") and m["stations"] == 4   # Z is never captured
    assert m["change_by_station"] == {c: pytest.approx(bikes(c, t + timedelta(hours=3)) + 1 - bikes(c, t))
                                      for c in ("A", "B", "C", "U")}


def test_png_map_says_so_when_actuals_have_no_coordinates(s3_root, storage):
    publish_night(storage, s3_root)
    hours = score.hours_of(forecasts.read_partition(storage, s3_root, RUN_DATE))
    actuals = [{"station_code": c, "ts": t, "bikes": bikes(c, t)} for c in ("A", "B", "U") for t in hours]
    res = report_png.render_run_png(storage, s3_root, RUN_DATE, st.join(s3_root, "n.png"), grid_or_actuals=actuals)
    assert res["map"]["stations"] == 0


def put_metadata_only_model(storage, root, version, start, end):
    """models/<version>/model.tar.gz holding just the metadata that names its training span."""
    import gzip
    import io
    import json
    import tarfile

    data = json.dumps({"version": version, "training_data": {"start": start, "end": end}}).encode()
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        info = tarfile.TarInfo("metadata.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    storage.write_bytes(st.join(root, "models", version, "model.tar.gz"), gzip.compress(raw.getvalue()))


def test_verdict_states_the_comparison_and_whether_the_day_was_seen(tmp_path, storage):
    root = str(tmp_path / "root")
    write_captures(storage, root, LAST_TARGET + timedelta(hours=3))
    publish_night(storage, root, delta=lambda h: 0)  # a perfect model
    put_metadata_only_model(storage, root, "v1", "2022-05-23T00:00:00Z", "2022-05-25T20:00:00Z")
    res = score.score_run(storage, cfg_for(root), RUN_DATE)
    assert res["in_training_span"] is False
    assert res["verdict"].startswith("the model beats persistence at every horizon: T+1h 100.0% better (0.00 vs ")
    assert "out of sample: v1 was trained on the hours 2022-05-23T00:00Z through 2022-05-25T20:00Z" in res["verdict"]
    png = report_png.render_run_png(storage, root, RUN_DATE)
    assert png["verdict"] == res["verdict"] and png["in_training_span"] is False

    put_metadata_only_model(storage, root, "v1", "2022-05-23T00:00:00Z", "2022-05-26T23:00:00Z")
    publish_night(storage, root, delta=lambda h: 30)  # far off at every horizon
    res = score.score_run(storage, cfg_for(root), RUN_DATE)
    assert res["in_training_span"] is True
    assert res["verdict"].startswith("the model loses to persistence at every horizon: T+1h ")
    assert "% worse" in res["verdict"] and "IN SAMPLE" in res["verdict"]


def test_a_target_hour_the_store_never_captured_is_not_scored(tmp_path, storage):
    """Without a capture near the hour, the grid carries the previous state forward: scoring
    against it would hand persistence a perfect score on every station."""
    root = str(tmp_path / "root")
    write_captures(storage, root, LAST_TARGET + timedelta(hours=3))
    gap = ORIGINS[6]
    storage.delete(next(i.uri for i in storage.list(str(tmp_path / "root" / "velib"))
                        if f"{key_time(gap)}" in i.uri))
    publish_night(storage, root)
    res = score.score_run(storage, cfg_for(root), RUN_DATE)
    # A, B and U: 3 origins have a target (T+1..3 h) at the missing hour; C is stale there anyway.
    assert res["unscorable_by_reason"][score.NOT_OBSERVED] >= 3 * 3
    df = score.attach_actuals(forecasts.read_partition(storage, root, RUN_DATE),
                              score.load_grid(storage, cfg_for(root), score.hours_of(
                                  forecasts.read_partition(storage, root, RUN_DATE)))[0], None)
    carried = df[(df["target_ts"] == gap) & df["station_code"].isin(["A"])]
    assert (carried["actual"] == bikes("A", gap - timedelta(hours=1))).all()  # what the store alone would say
    # the report PNG scores the same rows: its bars and verdict agree with the accuracy written
    data = report_png.run_data(storage, root, RUN_DATE)
    assert (data.df["reason"] == score.NOT_OBSERVED).sum() == res["unscorable_by_reason"][score.NOT_OBSERVED]
    keys = ("horizon_h", "scored_rows", "mae_model", "mae_persistence")
    assert [{k: r[k] for k in keys} for r in data.summary] == res["by_horizon"]
