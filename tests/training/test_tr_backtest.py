"""Rolling-origin backtests: each day is forecast by a model trained only on targets before it."""

from datetime import date, datetime

import pytest

from velibcast.timeutil import UTC
from velibcast.training import backtest
from velibcast.training.samples import samples_from_grid, station_mapping
from velibcast.training.synthetic import make_grid

START = datetime(2022, 5, 26, 22, tzinfo=UTC)  # Saturday 05-28 and Sunday 05-29 follow in Paris


@pytest.fixture(scope="module")
def result():
    grid = make_grid(12, 24 * 4, START, seed=5)
    s = samples_from_grid(grid, station_mapping(grid.station_codes))
    lines = []
    bt = backtest.rolling_origin(s, ["gbm"], seed=1, progress=lines.append)
    return bt, lines


def test_every_day_is_out_of_sample_or_skipped_with_a_reason(result):
    bt, _ = result
    days = [r["day"] for r in bt["days"]]
    assert days == ["2022-05-29", "2022-05-30"]
    # 05-27 holds one origin (23:00 Paris), whose targets fall on 05-28: nothing precedes either day.
    assert bt["skipped_days"] == [{"day": d, "reason": "no training sample has all its targets before this day"}
                                  for d in ("2022-05-27", "2022-05-28")]
    for r in bt["days"]:
        assert r["train_days"][1] < r["day"]
        assert r["windows"] > 0 and set(r["mae"]) == {"gbm", "persistence", "seasonal_naive"}
    assert [r["day_type"] for r in bt["days"]] == ["non_working", "working"]


def test_summary_by_horizon_and_day_type(result):
    bt, lines = result
    s = bt["summary"]["gbm"]
    assert len(s["mae_mean_over_days"]) == 3 and len(s["gain_vs_persistence_pct"]) == 3
    assert set(s["by_day_type"]) == {"working", "non_working"}
    assert s["by_day_type"]["non_working"]["windows"] == bt["days"][0]["windows"]
    assert any(line.startswith("backtest 2022-05-29 (non_working") for line in lines)
    table = backtest.format_table(bt)
    assert "2022-05-28  skipped" in table and "mean over days gbm" in table


def test_days_can_be_chosen(result):
    grid = make_grid(12, 24 * 4, START, seed=5)
    s = samples_from_grid(grid, station_mapping(grid.station_codes))
    bt = backtest.rolling_origin(s, ["gbm"], seed=1, progress=lambda line: None, days=[date(2022, 5, 30)])
    assert [r["day"] for r in bt["days"]] == ["2022-05-30"]


def test_a_day_type_never_seen_before_is_a_cold_start_listed_not_scored():
    grid = make_grid(10, 24 * 4, datetime(2022, 5, 22, 22, tzinfo=UTC), seed=3)  # Mon 05-23 .. Thu 05-26 Paris
    s = samples_from_grid(grid, station_mapping(grid.station_codes))
    quiet = lambda line: None
    bt = backtest.rolling_origin(s, ["gbm"], seed=1, progress=quiet, days=[date(2022, 5, 25), date(2022, 5, 26)])
    assert [r["day"] for r in bt["days"]] == ["2022-05-25"]
    (skip,) = bt["skipped_days"]
    assert skip["day"] == "2022-05-26" and skip["reason"].startswith("cold start: no non_working day before it")
    scored = backtest.rolling_origin(s, ["gbm"], seed=1, progress=quiet, days=[date(2022, 5, 26)],
                                     score_cold_start=True)
    (row,) = scored["days"]
    assert row["day_type"] == "non_working" and row["train_non_working_samples"] == 0
    # the fallback: a model that never saw a non-working day serves persistence on one
    assert row["mae"]["gbm"] == row["mae"]["persistence"]
