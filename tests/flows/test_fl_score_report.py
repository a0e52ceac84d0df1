"""Accuracy scoring and the run PNG on a small hand-built night whose errors are known."""

from datetime import date, datetime, timedelta

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
import pytest

from tests.helpers import output_line, read_accuracy
from velibcast import storage as st
from velibcast.config import load_config
from velibcast.datasets import ingest
from velibcast.datasets.snapshots import write_snapshot
from velibcast.datasets.windows import origins_for_run_date
from velibcast.flows import forecasts, report_png, score
from velibcast.flows.products import DAY_AHEAD, EVALUATION, NOWCAST
from velibcast.timeutil import UTC, iso_minute, key_time

RUN_DATE = date(2022, 5, 26)
ORIGINS = origins_for_run_date(RUN_DATE)           # 2022-05-25T22Z .. 2022-05-26T21Z
FIRST, LAST_TARGET = ORIGINS[0], ORIGINS[-1] + timedelta(hours=3)
N = len(ORIGINS)                                   # 24
CAP = 40
SPREAD = 1                                         # P10 and P90 one bike either side of the forecast
CODES = ("A", "B", "C", "E", "F", "U", "Z")
# C vanishes from the captures for 5 hours (> max_staleness 3 h), Z is never captured.
C_GONE = [ORIGINS[10] + timedelta(hours=k) for k in range(1, 6)]
# F's targets at capacity over a day, where the model errs downwards (see pred)
MIRRORED = N // 2


def bikes(code: str, t: datetime) -> int:
    k = int((t - FIRST).total_seconds() // 3600)
    if code == "A":
        return [2, 6, 12, 18, 20, 16, 9, 4][k % 8]   # busy
    if code == "U":
        return 5 + (k % 4)                           # unknown to the model
    if code == "E":
        return 0 if k % 8 < 4 else 2                 # empty half the time
    if code == "F":
        return CAP if k % 8 < 4 else 30              # full half the time
    return 7                                         # B, C and Z: quiet


def pred(code: str, t: datetime, h: int, delta) -> int:
    """The model's forecast made at t for t + h: the actual plus delta(h), or minus it where
    plus would leave [0, capacity] (F when full): its absolute error is |delta(h)|."""
    a, d = bikes(code, t + timedelta(hours=h)), delta(h)
    return a + d if 0 <= a + d <= CAP else a - d


def record(code: str, t: datetime) -> dict:
    n, i = bikes(code, t), CODES.index(code)
    return {"stationcode": code, "name": f"station {code}", "capacity": CAP, "numbikesavailable": n,
            "numdocksavailable": CAP - n, "mechanical": n, "ebike": 0, "is_installed": "OUI",
            "is_renting": "OUI", "is_returning": "OUI",
            "coordonnees_geo": {"lat": 48.85 + 0.004 * i, "lon": 2.30 + 0.01 * i}}


def write_captures(storage, root, until: datetime, absent=()) -> None:
    """Hourly captures of every station but Z (and C while C_GONE, and each (code, hour) in `absent`)."""
    t = FIRST - timedelta(hours=2)
    while t <= until:
        codes = [c for c in CODES if c != "Z" and (c != "C" or t not in C_GONE) and (c, t) not in absent]
        write_snapshot(storage, root, t, [record(c, t) for c in codes])
        t += timedelta(hours=1)


def joined(origins, product, delta=lambda h: h, run_id="run-1", codes=CODES):
    """The join of a hand-made model's output (pred, SPREAD) for `codes` at `origins`: the
    product's horizons, the last one repeated beyond them (output_line)."""
    sent, lines = {}, []
    for t in origins:
        for code in codes:
            rid = f"{code}@{iso_minute(t)}"
            sent[rid] = forecasts.SentRecord(code, t, CAP, code == "U")
            lines.append(output_line(rid, [pred(code, t, h, delta) for h in product.horizons], CAP, SPREAD))
    return forecasts.join_predictions(sent, [("o.out", "\n".join(lines).encode())], "csv", "v1", run_id, product)


def publish_night(storage, root, delta=lambda h: h) -> None:
    """Every origin of RUN_DATE, evaluation product: the model's MAE at horizon h is |delta(h)| where scorable."""
    forecasts.publish(storage, root, EVALUATION.name, RUN_DATE, joined(ORIGINS, EVALUATION, delta))


def cfg_for(root):
    return load_config(None, overrides={"store": {"root": root}})


def expected_persistence_mae(h: int, codes=("A", "B", "E", "F", "U"), origins=ORIGINS) -> float:
    errs = [abs(bikes(c, t + timedelta(hours=h)) - bikes(c, t)) for c in codes for t in origins]
    return sum(errs) / len(errs)


def test_scores_read_from_the_ingested_states_equal_the_scores_of_the_raw_captures(tmp_path, storage):
    root = str(tmp_path / "store")
    write_captures(storage, root, LAST_TARGET + timedelta(hours=3))
    publish_night(storage, root)
    raw = score.score_run(storage, cfg_for(root), RUN_DATE)
    done = ingest.ingest(storage, root, root, FIRST - timedelta(days=1), LAST_TARGET + timedelta(days=1))
    assert done.written and storage.exists(ingest.partition_uri(root, RUN_DATE))
    stored = score.score_run(storage, cfg_for(root), RUN_DATE)
    assert stored["by_horizon"] == raw["by_horizon"] and stored["scored_rows"] == raw["scored_rows"] > 0
    assert stored["unscorable_by_reason"] == raw["unscorable_by_reason"]


def test_score_gives_known_mae_pinball_coverage_and_brier_per_horizon(any_root, storage):
    write_captures(storage, any_root, LAST_TARGET + timedelta(hours=3))
    publish_night(storage, any_root)
    res = score.score_run(storage, cfg_for(any_root), RUN_DATE)
    assert res["status"] == score.SCORED, res
    assert res["forecast_rows"] == len(CODES) * 3 * N
    # Z is never captured; C is stale at targets in its gap, and has no origin value for persistence there,
    # but the gap's fifth hour is past the states rule's lookback (docs/states-dataset.md): no actual.
    reasons = res["unscorable_by_reason"]
    assert reasons[score.NO_ACTUAL] == 3 * N + 3
    assert reasons[score.STALE_ACTUAL] > 0 and reasons[score.NO_ORIGIN_VALUE] > 0
    assert res["scored_rows"] + res["unscorable_rows"] == res["forecast_rows"]

    acc = read_accuracy(storage, any_root, RUN_DATE).to_pylist()
    assert [r["horizon_h"] for r in acc] == [1, 2, 3]
    for r in acc:
        h, s = r["horizon_h"], r["scored_rows"]
        assert r["run_id"] == "run-1" and r["product"] == EVALUATION.name and r["status"] == score.SCORED
        assert r["scored_rows"] + sum(r[f"unscorable_{x}"] for x in score.REASONS) == r["forecast_rows"] == len(CODES) * N
        assert 5 * N < s < 6 * N                          # A, B, E, F, U, and C outside its gap
        assert r["mae_model"] == pytest.approx(h)
        assert r["bias_model"] == pytest.approx(h * (s - 2 * MIRRORED) / s)
        # Forecast a + h with P10 a + h - 1 and P90 a + h + 1 (F when full: a - h, a - h - 1, a - h + 1):
        # the P10 misses by h - 1 from above (0.9 each), the P90 by h + 1 (0.1 each); mirrored at F.
        p10_up, p90_up = 0.9 * (h - 1), 0.1 * (h + 1)
        assert r["pinball_bikes_p10"] == pytest.approx(((s - MIRRORED) * p10_up + MIRRORED * p90_up) / s)
        assert r["pinball_bikes_p50"] == pytest.approx(0.5 * h)
        assert r["pinball_bikes_p90"] == pytest.approx(((s - MIRRORED) * p90_up + MIRRORED * p10_up) / s)
        # at +1 h the actual sits on the interval's edge: inside
        assert r["coverage_p10_p90"] == (1.0 if h == 1 else 0.0)
        # p_empty and p_full are 0.05 on every row (no forecast is 0 or 40); E is empty, F full,
        # at half of their targets. Persistence is wrong where E or F changed state: 2h of every 8 origins.
        brier = (MIRRORED * 0.95 ** 2 + (s - MIRRORED) * 0.05 ** 2) / s
        assert r["brier_empty"] == pytest.approx(brier) and r["brier_full"] == pytest.approx(brier)
        assert r["brier_empty_persistence"] == pytest.approx(N * h / 4 / s)
        assert r["brier_full_persistence"] == pytest.approx(N * h / 4 / s)


def test_persistence_mae_is_exact_on_fully_observed_stations(tmp_path, storage):
    root = str(tmp_path / "root")
    write_captures(storage, root, LAST_TARGET + timedelta(hours=3))
    publish_night(storage, root)
    table = forecasts.read_partition(storage, root, EVALUATION.name, RUN_DATE)
    df = score.attach_actuals(table, score.load_grid(storage, cfg_for(root), score.hours_of(table))[0], None)
    summary = score.summarise(df[df["station_code"].isin(["A", "B", "E", "F", "U"])])
    for r in summary:
        assert r["mae_persistence"] == pytest.approx(expected_persistence_mae(r["horizon_h"]))
        assert r["scored_rows"] == 5 * N


def test_rescoring_replaces_the_date_and_partial_becomes_scored(tmp_path, storage):
    root = str(tmp_path / "root")
    publish_night(storage, root)
    assert score.score_run(storage, cfg_for(root), date(2022, 5, 27))["status"] == score.NO_FORECASTS

    write_captures(storage, root, FIRST + timedelta(hours=2))     # first target not settled yet
    res = score.score_run(storage, cfg_for(root), RUN_DATE)
    assert res["status"] == score.NOT_YET and "score again later" in res["message"]
    assert not storage.exists(score.accuracy_uri(root, EVALUATION.name, RUN_DATE))

    write_captures(storage, root, ORIGINS[12])
    res = score.score_run(storage, cfg_for(root), RUN_DATE)
    assert res["status"] == score.PARTIAL and res["unscorable_by_reason"][score.NOT_SETTLED] > 0

    write_captures(storage, root, LAST_TARGET + timedelta(hours=3))
    res = score.score_run(storage, cfg_for(root), RUN_DATE)
    assert res["status"] == score.SCORED and score.NOT_SETTLED not in res["unscorable_by_reason"]
    assert res["accuracy_uri"] == st.join(root, "accuracy", "product=evaluation", "run_date=2022-05-26", "part-0.parquet")
    ds = pads.dataset(str(tmp_path / "root" / "accuracy"), format="parquet", partitioning="hive")
    t = ds.to_table()
    assert t.num_rows == 3 and set(t.column("status").to_pylist()) == {score.SCORED}


def test_a_date_of_several_runs_scores_each_run_and_pools_by_horizon(tmp_path, storage):
    """Hourly nowcasts share their date's partition: one accuracy row per run and horizon, pooled per horizon."""
    root = str(tmp_path / "root")
    write_captures(storage, root, LAST_TARGET + timedelta(hours=3))
    codes = ("A", "B", "E", "F", "U")                 # every row scorable
    runs = [joined([ORIGINS[12]], NOWCAST, lambda h: h, "now-10", codes),
            joined([ORIGINS[13]], NOWCAST, lambda h: 2 * h, "now-11", codes)]
    forecasts.publish(storage, root, NOWCAST.name, RUN_DATE, forecasts.sort_rows(pa.concat_tables(runs)))
    res = score.score_run(storage, cfg_for(root), RUN_DATE, product=NOWCAST.name)
    assert res["status"] == score.SCORED and res["run_ids"] == ["now-10", "now-11"]
    acc = read_accuracy(storage, root, RUN_DATE, NOWCAST.name).to_pylist()
    assert [(r["run_id"], r["horizon_h"]) for r in acc] == [(run, h) for run in ("now-10", "now-11") for h in (1, 2, 3)]
    assert [r["mae_model"] for r in acc] == pytest.approx([1, 2, 3, 2, 4, 6])
    assert {r["product"] for r in acc} == {NOWCAST.name}
    for r in res["by_horizon"]:
        h = r["horizon_h"]
        assert r["scored_rows"] == 2 * len(codes)
        assert r["mae_model"] == pytest.approx(1.5 * h)
        assert r["mae_persistence"] == pytest.approx(expected_persistence_mae(h, codes, ORIGINS[12:14]))

    # the PNG draws the latest run's band and map, and judges on the rows of both runs
    png = report_png.render_run_png(storage, root, RUN_DATE, product=NOWCAST.name)
    assert png["run_id"] == "now-11" and png["uri"] == st.join(root, "runs", "now-11", "report.png")
    # targets 12:00-14:00Z are 14:00-16:00 in Paris: 14:00 is the nearest to the morning peak
    assert png["map"]["target"] == "2022-05-26T12:00:00+00:00" and png["map"]["stations"] == len(codes)
    assert sum(b["n"] for b in png["reliability"]["p_empty"]) == 2 * 3 * len(codes)
    assert [r["label"] for r in png["mae_by"]] == ["T+1h", "T+2h", "T+3h"]


def test_as_of_scores_what_a_store_cut_at_as_of_would(tmp_path, storage):
    full, cut = str(tmp_path / "full"), str(tmp_path / "cut")
    as_of = ORIGINS[12]
    write_captures(storage, full, LAST_TARGET + timedelta(hours=3))
    write_captures(storage, cut, as_of)
    # a capture after as_of that scoring would count as a bad record if it read it
    bad = [record(c, as_of + timedelta(minutes=30)) for c in ("A", "B")]
    bad[0]["numbikesavailable"] = -1
    write_snapshot(storage, full, as_of + timedelta(minutes=30), bad)
    for root in (full, cut):
        publish_night(storage, root)
    now = datetime(2022, 5, 27, 6, tzinfo=UTC)
    a = score.score_run(storage, cfg_for(full), RUN_DATE, now=now, as_of=as_of)
    b = score.score_run(storage, cfg_for(cut), RUN_DATE, now=now)
    assert a["status"] == b["status"] == score.PARTIAL and a["actuals_through"] == as_of.isoformat()
    assert a["snapshot_report"] == b["snapshot_report"]
    assert read_accuracy(storage, full, RUN_DATE).equals(read_accuracy(storage, cut, RUN_DATE))


def test_actuals_table_can_replace_the_store(tmp_path, storage):
    root = str(tmp_path / "root")
    publish_night(storage, root, delta=lambda h: 0)
    table = forecasts.read_partition(storage, root, EVALUATION.name, RUN_DATE)
    hours = score.hours_of(table)
    actuals = [{"station_code": c, "ts": t, "bikes": bikes(c, t)} for c in ("A", "B", "E", "F", "U") for t in hours]
    df = score.attach_actuals(table, score.grid_from_actuals(actuals), None)
    summary = score.summarise(df)
    assert all(r["mae_model"] == 0 for r in summary)
    assert (df["reason"] == score.NO_ACTUAL).sum() == 2 * 3 * N   # C and Z


def test_png_beside_the_manifest_shows_busiest_and_unknown_station(tmp_path, storage):
    root = str(tmp_path / "root")
    write_captures(storage, root, LAST_TARGET + timedelta(hours=3))
    publish_night(storage, root, delta=lambda h: h - 2)
    res = report_png.render_run_png(storage, root, RUN_DATE)
    assert res["uri"] == st.join(root, "runs", "run-1", "report.png")
    png = storage.read_bytes(res["uri"])
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
    # by bikes moved: A 36 every 8 hours, F 20, E 4, B and C none; then the station unknown to the model
    assert res["stations"] == ["A", "F", "E", "U"]
    assert [r["horizon_h"] for r in res["by_horizon"]] == [1, 2, 3]
    assert res["by_horizon"][2]["mae_model"] == pytest.approx(1.0)
    # the +2 h forecast is exact, so it says 1 where E is empty (F full) and 0.05 elsewhere: two bins
    total = res["scored_rows"]
    empty_at = {"p_empty": 3 * N // 2, "p_full": 3 * N // 2}  # E empty, F full, at half of each horizon's targets
    for p, bins in res["reliability"].items():
        assert [(b["lo"], b["n"]) for b in bins] == [(0.0, total - N // 2), (0.9, N // 2)]
        assert bins[1]["observed"] == 1.0
        assert bins[0]["observed"] == pytest.approx((empty_at[p] - N // 2) / (total - N // 2))


def test_png_from_given_actuals_on_s3(s3_root, storage):
    publish_night(storage, s3_root)
    hours = score.hours_of(forecasts.read_partition(storage, s3_root, EVALUATION.name, RUN_DATE))
    actuals = [{"station_code": c, "ts": t, "bikes": bikes(c, t)} for c in ("A", "B", "E", "F", "U") for t in hours]
    out = st.join(s3_root, "elsewhere", "night.png")
    res = report_png.render_run_png(storage, s3_root, RUN_DATE, out, grid_or_actuals=actuals)
    assert res["uri"] == out and storage.read_bytes(out)[:4] == b"\x89PNG"


def test_png_map_colours_stations_by_the_forecast_change_over_3_hours(tmp_path, storage):
    root = str(tmp_path / "root")
    write_captures(storage, root, LAST_TARGET + timedelta(hours=3))
    delta = lambda h: h - 2   # the +3 h forecast is 1 bike off
    publish_night(storage, root, delta)
    res = report_png.render_run_png(storage, root, RUN_DATE)
    m = res["map"]
    t = ORIGINS[-1]
    assert m["origin"] == t.isoformat() and m["stations"] == 6   # Z is never captured
    assert m["change_by_station"] == {c: pytest.approx(pred(c, t, 3, delta) - bikes(c, t))
                                      for c in ("A", "B", "C", "E", "F", "U")}


def test_png_map_says_so_when_actuals_have_no_coordinates(s3_root, storage):
    publish_night(storage, s3_root)
    hours = score.hours_of(forecasts.read_partition(storage, s3_root, EVALUATION.name, RUN_DATE))
    actuals = [{"station_code": c, "ts": t, "bikes": bikes(c, t)} for c in ("A", "B", "U") for t in hours]
    res = report_png.render_run_png(storage, s3_root, RUN_DATE, st.join(s3_root, "n.png"), grid_or_actuals=actuals)
    assert res["map"]["stations"] == 0


def test_day_ahead_is_judged_by_horizon_bucket_and_its_png_maps_p_empty_at_the_morning_peak(tmp_path, storage):
    root = str(tmp_path / "root")
    write_captures(storage, root, LAST_TARGET + timedelta(hours=3))
    origin = ORIGINS[2]                                # 2022-05-26 02:00 in Paris
    codes = ("A", "B", "E", "F", "U", "Z")
    delta = lambda h: h % 2   # exact at even horizons, 1 bike off at odd ones
    forecasts.publish(storage, root, DAY_AHEAD.name, RUN_DATE, joined([origin], DAY_AHEAD, delta, "ahead-1", codes))
    res = score.score_run(storage, cfg_for(root), RUN_DATE, product=DAY_AHEAD.name)
    assert res["status"] == score.SCORED and [r["horizon_h"] for r in res["by_horizon"]] == list(range(1, 25))
    # the MAE of a bucket is its share of odd horizons
    assert [(r["label"], r["mae_model"]) for r in res["by_bucket"]] == [
        ("T+1-3h", pytest.approx(2 / 3)), ("T+4-8h", pytest.approx(2 / 5)),
        ("T+9-16h", pytest.approx(1 / 2)), ("T+17-24h", pytest.approx(1 / 2))]
    assert res["verdict"].count("T+") == 4

    png = report_png.render_run_png(storage, root, RUN_DATE, product=DAY_AHEAD.name)
    assert png["uri"] == st.join(root, "runs", "ahead-1", "report.png")
    assert png["stations"] == ["A", "F", "E", "U"]
    assert [r["label"] for r in png["mae_by"]] == ["T+1-3h", "T+4-8h", "T+9-16h", "T+17-24h"]
    assert png["verdict"] == res["verdict"]
    # 08:00 in Paris is 06:00Z, +6 h: exact there, so p_empty is 1 at E (empty then) and 0.05 elsewhere
    peak = origin + timedelta(hours=6)
    assert bikes("E", peak) == 0
    assert png["map"]["target"] == peak.isoformat() and png["map"]["stations"] == 5   # Z has no coordinates
    assert png["map"]["p_empty_by_station"] == {c: pytest.approx(1.0 if c == "E" else 0.05)
                                                for c in ("A", "B", "E", "F", "U")}
    # p_empty is 1 exactly where the forecast (exact at even horizons) is 0 bikes
    sure = sum(1 for h in range(2, 25, 2) if bikes("E", origin + timedelta(hours=h)) == 0)
    top = png["reliability"]["p_empty"][-1]
    assert (top["lo"], top["n"], top["observed"]) == (0.9, sure, 1.0)
    assert sum(b["n"] for b in png["reliability"]["p_empty"]) == 5 * 24


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
    publish_night(storage, root, delta=lambda h: 10)  # far off at every horizon
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
    # A, B, E, F and U: 3 origins have a target (T+1..3 h) at the missing hour; C is stale there anyway.
    assert res["unscorable_by_reason"][score.NOT_OBSERVED] >= 5 * 3
    table = forecasts.read_partition(storage, root, EVALUATION.name, RUN_DATE)
    df = score.attach_actuals(table, score.load_grid(storage, cfg_for(root), score.hours_of(table))[0], None)
    carried = df[(df["target_ts"] == gap) & df["station_code"].isin(["A"])]
    before = gap - timedelta(hours=1)
    # what the store alone would say: the record of the hour before, from the origins before it; from
    # that hour's origin it is the origin's own record, and that rule already refuses it
    assert (carried.loc[carried["origin_ts"] < before, "actual"] == bikes("A", before)).all()
    assert carried.loc[carried["origin_ts"] == before, "reason"].tolist() == [score.ORIGIN_RECORD]
    # the report PNG scores the same rows: its bars and verdict agree with the accuracy written
    data = report_png.run_data(storage, root, RUN_DATE)
    assert (data.df["reason"] == score.NOT_OBSERVED).sum() == res["unscorable_by_reason"][score.NOT_OBSERVED]
    keys = ("horizon_h", "scored_rows", "mae_model", "mae_persistence")
    assert [{k: r[k] for k in keys} for r in data.summary] == [{k: r[k] for k in keys} for r in res["by_horizon"]]


def test_a_target_whose_state_is_the_origins_own_record_is_not_scored(tmp_path, storage):
    """A missing from the capture after ORIGINS[6]: its state at T+1 h is still its record of the
    origin, which persistence equals by construction. The other stations were captured then."""
    root = str(tmp_path / "root")
    after = ORIGINS[6] + timedelta(hours=1)
    write_captures(storage, root, LAST_TARGET + timedelta(hours=3), absent={("A", after)})
    publish_night(storage, root)
    res = score.score_run(storage, cfg_for(root), RUN_DATE)
    table = forecasts.read_partition(storage, root, EVALUATION.name, RUN_DATE)
    df = score.attach_actuals(table, score.load_grid(storage, cfg_for(root), score.hours_of(table))[0], None)
    unscored = df[df["reason"] == score.ORIGIN_RECORD]
    assert unscored.loc[unscored["station_code"] == "A", ["origin_ts", "horizon_h"]].values.tolist() == [[ORIGINS[6], 1]]
    # C, gone from the captures for 5 hours, shows its last record while it stays usable (3 h): the
    # targets of its last origin and of the two after it that this record still answers
    assert (unscored["station_code"] == "C").sum() == 3 + 2 + 1
    assert res["unscorable_by_reason"][score.ORIGIN_RECORD] == len(unscored)
    assert f"; {len(unscored)} not: {score.ORIGIN_RECORD}" in res["message"], "the command says why rows go unscored"
    # the origin after it keeps that record as its own state, and its targets are new records
    later = df[(df["station_code"] == "A") & (df["origin_ts"] == after)]
    assert later["reason"].isna().all() and (later["persistence"] == bikes("A", ORIGINS[6])).all()


def test_the_morning_peak_is_08_00_in_paris_on_clock_change_days_else_the_nearest_target():
    def hours(start, n):
        return pd.Series(pd.date_range(start, periods=n, freq="h"))
    assert report_png.peak_target(hours("2022-03-26T22:00Z", 24)) == pd.Timestamp("2022-03-27T06:00Z")  # summer time
    assert report_png.peak_target(hours("2022-10-29T22:00Z", 24)) == pd.Timestamp("2022-10-30T07:00Z")  # winter time
    # a nowcast at 23:00 (Paris): 00:00-02:00 the next day, 02:00 is the nearest
    assert report_png.peak_target(hours("2022-05-26T22:00Z", 3)) == pd.Timestamp("2022-05-27T00:00Z")


def test_a_day_ahead_png_drawn_before_any_target_is_observed(tmp_path, storage):
    """At 02:30 nothing the run forecasts has happened: the PNG shows the forecast and says so."""
    root = str(tmp_path / "root")
    origin = ORIGINS[2]
    write_captures(storage, root, origin + timedelta(minutes=30))
    forecasts.publish(storage, root, DAY_AHEAD.name, RUN_DATE, joined([origin], DAY_AHEAD, lambda h: h % 2, "ahead-1"))
    png = report_png.render_run_png(storage, root, RUN_DATE, product=DAY_AHEAD.name)
    assert storage.read_bytes(png["uri"])[:4] == b"\x89PNG"
    assert png["scored_rows"] == 0 and png["unscorable_by_reason"] == {score.NOT_SETTLED: len(CODES) * 24}
    assert png["reliability"] == {"p_empty": [], "p_full": []}
    assert png["verdict"].startswith("no row could be scored yet")
    assert png["map"]["stations"] == 6 and png["stations"][-1] == "U"
