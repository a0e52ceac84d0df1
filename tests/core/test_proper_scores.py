"""The proper scores against values worked out by hand."""

import numpy as np
import pytest

from velibcast import proper_scores as ps


def test_pinball_weighs_misses_by_the_quantile_level():
    y = np.array([0, 10])
    # y - q = -4 and 6: at tau 0.1 an over-forecast costs 0.9 a bike, an under-forecast 0.1
    assert ps.pinball(y, np.array([4, 4]), 0.1) == pytest.approx((0.9 * 4 + 0.1 * 6) / 2)
    assert ps.pinball(y, np.array([4, 4]), 0.9) == pytest.approx((0.1 * 4 + 0.9 * 6) / 2)
    # at the median it is half the absolute error
    assert ps.pinball(y, np.array([4, 4]), 0.5) == pytest.approx(0.5 * (4 + 6) / 2)
    assert ps.pinball(y, y, 0.1) == 0.0
    assert np.isnan(ps.pinball(np.array([]), np.array([]), 0.5))


def test_the_true_quantile_has_the_lowest_pinball():
    y = np.arange(10)      # 0..9: a tenth of the outcomes lie below 1, nine tenths below 9
    losses = {q: ps.pinball(y, np.full(10, q), 0.1) for q in range(10)}
    assert min(losses, key=losses.get) in (0, 1)
    losses = {q: ps.pinball(y, np.full(10, q), 0.9) for q in range(10)}
    assert min(losses, key=losses.get) in (8, 9)


def test_coverage_counts_outcomes_on_the_interval_edges_as_inside():
    y = np.array([2, 5, 8, 9, 1])
    assert ps.coverage(y, np.full(5, 2), np.full(5, 8)) == pytest.approx(3 / 5)
    assert ps.coverage(np.array([3]), np.array([3]), np.array([3])) == 1.0


def test_brier_and_its_skill_sign():
    p, event = np.array([0.8, 0.1]), np.array([True, False])
    assert ps.brier(p, event) == pytest.approx((0.2 ** 2 + 0.1 ** 2) / 2)
    better, worse = ps.brier(p, event), ps.brier(np.array([0.5, 0.5]), event)
    assert ps.skill(better, worse) == pytest.approx(1 - 0.025 / 0.25) and ps.skill(better, worse) > 0
    assert ps.skill(worse, better) < 0
    assert ps.skill(0.1, 0.0) is None            # a perfect reference leaves nothing to beat
    assert ps.skill(float("nan"), 0.2) is None


def test_events_empty_and_full():
    assert ps.empty(np.array([0, 1, 3])).tolist() == [True, False, False]
    # a station can report more bikes than its capacity: still full
    assert ps.full(np.array([9, 10, 11]), np.array([10, 10, 10])).tolist() == [False, True, True]


def test_reliability_bins_with_counts_and_observed_frequency():
    p = np.array([0.05, 0.05, 0.15, 0.95, 1.0])
    event = np.array([0, 1, 0, 1, 1])
    bins = ps.reliability(p, event)
    assert [(b["lo"], b["hi"], b["n"]) for b in bins] == [(0.0, 0.1, 2), (0.1, 0.2, 1), (0.9, 1.0, 2)]
    assert [b["observed"] for b in bins] == [0.5, 0.0, 1.0]
    assert [b["mean_forecast"] for b in bins] == pytest.approx([0.05, 0.15, 0.975])


def test_reliability_puts_a_stored_probability_in_its_own_bin():
    # p_empty is stored as float32: 0.7 is 0.69999999 there, which truncation would put in [0.6, 0.7)
    bins = ps.reliability(np.array([0.7, 0.3, 0.1], dtype=np.float32), np.array([1, 0, 0]))
    assert [b["lo"] for b in bins] == [0.1, 0.3, 0.7]


def test_horizon_buckets_cover_the_day_ahead_once():
    hours = [h for lo, hi in ps.HORIZON_BUCKETS for h in range(lo, hi + 1)]
    assert hours == list(range(1, 25))
    assert ps.bucket_of(1) == (1, 3) and ps.bucket_of(8) == (4, 8) and ps.bucket_of(17) == (17, 24)
