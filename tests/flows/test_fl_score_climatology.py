"""Forward scores of p_empty and p_full against the station's historical frequency for the target's
hour and day type (the CLIMATOLOGY_DAYS before the forecast), beside persistence: a hand-built store
whose frequencies are known, in the accuracy table and in what `velibcast score` prints."""

from datetime import date, timedelta

import numpy as np
import pytest

from tests.flows.test_fl_cli import config, velibcast
from tests.helpers import output_line, read_accuracy
from velibcast import proper_scores as ps
from velibcast.config import load_config
from velibcast.datasets.snapshots import write_snapshot
from velibcast.datasets.windows import origins_for_run_date
from velibcast.flows import forecasts, score
from velibcast.flows.products import EVALUATION
from velibcast.timeutil import PARIS, iso_minute

RUN_DATE = date(2022, 5, 26)  # Ascension: a non-working day
ORIGINS = origins_for_run_date(RUN_DATE)
CAP = 20
# In the history, E is empty (F full) at 06-08 local on working days and at 10-12 on non-working
# days; on RUN_DATE, one hour more: 10-13. Q never is.
HISTORY = {False: {6, 7, 8}, True: {10, 11, 12}}
ON_RUN_DATE = {10, 11, 12, 13}


def _event(t, non_working: bool) -> bool:
    local = t.astimezone(PARIS)
    hours = ON_RUN_DATE if local.date() == RUN_DATE else HISTORY[non_working]
    return local.hour in hours


def _bikes(code, t):
    local = t.astimezone(PARIS)
    non_working = local.weekday() >= 5 or local.date() in (RUN_DATE, date(2022, 5, 8))
    if code == "E":
        return 0 if _event(t, non_working) else 5
    if code == "F":
        return CAP if _event(t, non_working) else 15
    return 7


def _store(storage, root):
    t = ORIGINS[0] - timedelta(days=ps.CLIMATOLOGY_DAYS + 1)
    while t <= ORIGINS[-1] + timedelta(hours=6):
        write_snapshot(storage, root, t, [
            {"stationcode": c, "name": c, "capacity": CAP, "numbikesavailable": _bikes(c, t),
             "numdocksavailable": CAP - _bikes(c, t), "mechanical": _bikes(c, t), "ebike": 0, "is_installed": "OUI",
             "is_renting": "OUI", "is_returning": "OUI", "coordonnees_geo": {"lat": 48.85, "lon": 2.3 + i / 100}}
            for i, c in enumerate("EFQ")])
        t += timedelta(hours=1)
    sent, lines = {}, []
    for t in ORIGINS:
        for c in "EFQ":
            rid = f"{c}@{iso_minute(t)}"
            sent[rid] = forecasts.SentRecord(c, t, CAP, False)
            lines.append(output_line(rid, [7], CAP))  # p_empty and p_full 0.05 on every row
    table = forecasts.join_predictions(sent, [("o.out", "\n".join(lines).encode())], "csv", "v1", "run-1", EVALUATION)
    forecasts.publish(storage, root, EVALUATION.name, RUN_DATE, table)


def test_brier_of_p_empty_and_p_full_is_scored_against_the_hour_and_day_type_frequency(tmp_path, storage):
    root = str(tmp_path / "root")
    _store(storage, root)
    res = score.score_run(storage, load_config(None, overrides={"store": {"root": root}}), RUN_DATE)
    assert res["status"] == score.SCORED, res
    rows = read_accuracy(storage, root, RUN_DATE).to_pylist()
    assert [r["horizon_h"] for r in rows] == [1, 2, 3]
    for r in rows:
        n = r["scored_rows"]
        assert n == 3 * len(ORIGINS)
        # Each horizon's targets hold local 10-13 once each: the forecast's 0.05 misses 4 events.
        # The frequency of a non-working day, whatever working days did: at 13h 0, so it misses the event
        # by 1; at 10-12h the station's 4 of 4 days drawn towards the network's 1 of 3 stations (`own`),
        # the two other stations' 0 of 4 likewise (`other`).
        k = ps.FREQUENCY_PRIOR
        own, other = (4 + k / 3) / (4 + k), (k / 3) / (4 + k)
        for event in ("empty", "full"):
            assert r[f"brier_{event}"] == pytest.approx((4 * 0.95 ** 2 + (n - 4) * 0.05 ** 2) / n)
            assert r[f"brier_{event}_climatology"] == pytest.approx((1 + 3 * (1 - own) ** 2 + 6 * other ** 2) / n)
    for pooled in res["by_horizon"]:
        for event in ("empty", "full"):
            b, ref = pooled[f"brier_{event}"], pooled[f"brier_{event}_climatology"]
            assert pooled[f"brier_skill_{event}_climatology"] == pytest.approx(1 - b / ref)
            assert pooled[f"brier_skill_{event}_climatology"] < 0  # a flat 5 % loses to the station's habits


def test_velibcast_score_prints_the_brier_skill_against_frequency_and_persistence(tmp_path, storage):
    root = str(tmp_path / "root")
    _store(storage, root)
    r = velibcast("score", "--run-date", RUN_DATE.isoformat(), "--config", config(tmp_path, {"store": {"root": root}}),
                  cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    head = next(line for line in r.stdout.splitlines() if "rows" in line and "MAE" in line)
    assert "skill vs freq./pers." in head
    res = score.score_run(storage, load_config(None, overrides={"store": {"root": root}}), RUN_DATE)
    first = next(line for line in r.stdout.splitlines() if line.split()[:1] == ["1"])
    h1 = res["by_horizon"][0]
    assert f"{h1['brier_skill_empty_climatology']:+.2f}/{h1['brier_skill_empty']:+.2f}" in first, first


def test_event_frequency_is_per_station_day_type_and_local_hour_drawn_towards_the_networks():
    # two stations' observations: station 0 at (working, 8h) twice, (non-working, 8h), (working, 9h);
    # station 1 at (working, 8h) twice and (working, 9h)
    station = np.array([0, 0, 0, 0, 1, 1, 1])
    non_working = np.array([0, 0, 1, 0, 0, 0, 0])
    hour = np.array([8, 8, 8, 9, 8, 8, 9])
    event = np.array([1, 0, 1, 1, 0, 0, 0], bool)
    by_station = ps.event_frequency(station, non_working, hour, event, n_stations=3)
    k = ps.FREQUENCY_PRIOR
    assert by_station.shape == (3, 2, 24)
    # the network's at (working, 8h): 1 of 4; at (working, 9h): 1 of 2; at (non-working, 8h): 1 of 1
    assert by_station[0, 0, 8] == pytest.approx((1 + k / 4) / (2 + k))
    assert by_station[1, 0, 8] == pytest.approx((0 + k / 4) / (2 + k))
    assert by_station[0, 0, 9] == pytest.approx((1 + k / 2) / (1 + k))
    assert by_station[1, 0, 9] == pytest.approx((0 + k / 2) / (1 + k))
    assert by_station[0, 1, 8] == pytest.approx(1.0)
    assert by_station[1, 1, 8] == pytest.approx(1.0)  # the second station was never seen there: the network's
    assert by_station[2, 0, 8] == pytest.approx(1 / 4)  # the third was never seen: the network's everywhere
    # no station was seen at (non-working, 9h): the network's at 9h on either day type
    assert by_station[0, 1, 9] == pytest.approx(1 / 2) and by_station[1, 1, 9] == pytest.approx(1 / 2)
    assert np.isnan(by_station[:, :, 10]).all()  # no station was ever seen at 10h
