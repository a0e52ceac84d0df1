"""Rolling-origin backtests: each day is forecast by a model trained only on targets before it, and
scored per product, horizon and day against the baselines, with proper scores of the distribution."""

from datetime import date, datetime

import numpy as np
import pytest

from velibcast.timeutil import UTC
from velibcast.training import backtest, evaluate
from velibcast.training.samples import samples_from_grid, station_mapping
from velibcast.training.synthetic import make_grid
from velibcast.transform_code import velib_features as F

START = datetime(2022, 5, 26, 22, tzinfo=UTC)  # Paris Friday 05-27, then Saturday 05-28 and Sunday 05-29
QUIET = dict(progress=lambda line: None)


@pytest.fixture(scope="module")
def samples():
    grid = make_grid(12, 24 * 5, START, seed=5)
    return samples_from_grid(grid, station_mapping(grid.station_codes))


@pytest.fixture(scope="module")
def result(samples, monkeypatch_module):
    monkeypatch_module.setattr(backtest.C, "GBM_ROUNDS", 20)
    lines = []
    return backtest.rolling_origin(samples, ["gbm"], seed=1, progress=lines.append), lines


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def test_every_day_is_out_of_sample_or_skipped_with_a_reason(result):
    bt, _ = result
    assert [r["day"] for r in bt["days"]] == ["2022-05-29", "2022-05-30"]
    # 05-27 holds one origin (23:00 Paris), whose targets fall on 05-28: nothing precedes either day.
    assert bt["skipped_days"] == [{"day": d, "reason": "no training sample has a target before this day"}
                                  for d in ("2022-05-27", "2022-05-28")]
    for r in bt["days"]:
        assert r["train_days"][1] < r["day"]
        scores = r["scores"]["gbm"]
        assert set(scores["mae"]) == {"gbm", *evaluate.BASELINES} and len(scores["n"]) == F.MAX_HORIZON
    assert [r["day_type"] for r in bt["days"]] == ["non_working", "working"]


def test_no_target_of_the_scored_day_reaches_its_training(samples):
    first = 24 * 2  # 05-28 22:00Z: Paris midnight, 05-29 begins
    train = samples.targets_before(first)
    rows, cols = np.nonzero(np.isfinite(train.y))
    assert (train.origin[rows] + cols + 1 < first).all() and (train.origin < first).all()
    assert np.isfinite(train.y[train.origin == first - 2]).sum(axis=1).max() == 1, "the last origins keep early horizons"


def test_scores_hold_every_product_and_proper_score(result):
    bt, lines = result
    s = bt["summary"]["gbm"]
    assert len(s["mae_mean_over_days"]) == F.MAX_HORIZON
    assert s["buckets"] == ["T+1h", "T+2h", "T+3h", "T+4..8h", "T+9..16h", "T+17..24h"]
    assert set(s["pinball"]) == {"bikes_p10", "bikes_p50", "bikes_p90"}
    assert all(0 <= c <= 1 for c in s["coverage_p10_p90"] if c is not None)
    assert set(s["brier"]["p_empty"]) == {"gbm", "climatology", "persistence"}
    rel = s["reliability"]["p_full"]
    assert len(rel["count"]) == 10 and sum(rel["count"]) == sum(s["n"])
    assert any(line.startswith("backtest 2022-05-29 (non_working") for line in lines)
    fallback = s[backtest.PROFILE_FALLBACK]
    assert all(0 <= c <= 1 for c in fallback["coverage_p10_p90"] if c is not None)
    assert fallback["mae"] != s["mae_mean_over_days"], "served as stale, the windows get the profile, not the model"
    table = backtest.format_table(bt)
    for part in ("nowcast (gbm)", "day-ahead (gbm)", "distribution (gbm)", "profile fallback (gbm)",
                 "2022-05-28  skipped", "all days"):
        assert part in table


def test_pinball_coverage_and_brier_by_hand():
    x = np.zeros((2, len(F.FEATURE_COLUMNS)))
    x[:, F.COL["capacity"]] = 10
    x[:, 23] = [0, 5]
    y = np.full((2, F.MAX_HORIZON), np.nan)
    y[:, 0] = [0, 10]
    q = np.zeros((2, F.MAX_HORIZON, 6))
    q[1, 0, :4] = [6, 4, 6, 8]      # bikes, p10, p50, p90: the outcome 10 lies above the interval
    q[0, 0, 4], q[1, 0, 5] = 0.5, 0.25  # p_empty of the empty one, p_full of the full one
    s = evaluate.score(q, y, x, {"persistence": evaluate.persistence(x)}, None)
    assert s["n"][:2] == [2, 0] and s["mae"]["model"][0] == 2.0 and s["mae"]["model"][1] is None
    assert s["pinball"]["bikes_p90"][0] == pytest.approx((0 + 0.9 * 2) / 2)
    assert s["coverage_p10_p90"][0] == 0.5
    assert s["brier"]["p_empty"]["model"][0] == pytest.approx((0.5 ** 2 + 0) / 2)
    assert s["brier"]["p_full"]["model"][0] == pytest.approx((0 + 0.75 ** 2) / 2, abs=1e-4)  # kept to 4 decimals


def test_same_day_type_reads_the_latest_earlier_day_of_the_targets_type(samples):
    base = evaluate.same_day_type(samples)
    i = int(np.flatnonzero(samples.origin == 24 * 3 + 10)[0])  # Monday 05-30, 10:00Z
    st = samples.station[i]
    state = {(s, o): v for s, o, v in zip(samples.station, samples.origin, samples.x[:, 23])}
    # T+1h on Monday: the latest working day before is Friday 05-27, three days back (the weekend is skipped)
    friday = samples.origin[i] + 1 - 72
    assert base[i, 0] == state.get((st, friday), samples.x[i, 23])


def test_days_can_be_chosen(samples):
    bt = backtest.rolling_origin(samples, ["gbm"], seed=1, days=[date(2022, 5, 30)], **QUIET)
    assert [r["day"] for r in bt["days"]] == ["2022-05-30"]


def test_a_day_type_never_seen_before_is_a_cold_start_listed_not_scored():
    grid = make_grid(10, 24 * 5, datetime(2022, 5, 22, 22, tzinfo=UTC), seed=3)  # Mon 05-23 .. Fri 05-27 Paris
    s = samples_from_grid(grid, station_mapping(grid.station_codes))
    bt = backtest.rolling_origin(s, ["gbm"], seed=1, days=[date(2022, 5, 25), date(2022, 5, 26)], **QUIET)
    assert [r["day"] for r in bt["days"]] == ["2022-05-25"]
    (skip,) = bt["skipped_days"]
    assert skip["day"] == "2022-05-26" and skip["reason"].startswith("cold start: no non_working day before it")
