"""The predictive distribution: calibrated residual levels placed around any point forecast."""

import numpy as np
import pytest

from velibcast.transform_code import velib_distribution as D
from velibcast.transform_code import velib_features as F
from velibcast.transform_code.velib_errors import ModelLoadError

Q = {name: F.OUTPUT_QUANTITIES.index(name) for name in F.OUTPUT_QUANTITIES}


def calibrated(scale=2.0, n=60_000, seed=0):
    rng = np.random.default_rng(seed)
    cap = rng.integers(10, 60, n).astype(float)
    pred = rng.uniform(0, 1, n) * cap
    horizon = rng.integers(1, F.MAX_HORIZON + 1, n)
    actual = np.clip(np.round(pred + rng.normal(0, scale * np.sqrt(horizon))), 0, cap)
    profile = np.clip(actual + rng.normal(0, 4 * scale, n), 0, cap)  # knows no state: wide at every horizon
    return D.calibrate(pred, actual, cap, horizon, profile), (pred, actual, cap, horizon, profile)


def test_quantiles_ordered_in_range_probabilities_rounded_for_any_forecast():
    spec, _ = calibrated()
    dist = D.Distribution(spec)
    rng = np.random.default_rng(1)
    cap = np.array([0, 1, 2, 35, 200, 12, 12, 12], dtype=float)
    pred = np.column_stack([rng.uniform(-50, 250, (8, F.MAX_HORIZON - 2)),
                            np.full((8, 1), np.nan_to_num(np.inf)), np.full((8, 1), -1e9)])
    q = dist.quantities(pred, cap)
    assert q.shape == (8, F.MAX_HORIZON, len(F.OUTPUT_QUANTITIES))
    assert (q[:, :, Q["fallback"]] == F.MODEL).all(), "no fallback named: the family made every forecast"
    bikes = q[:, :, [Q["bikes"], Q["bikes_p10"], Q["bikes_p50"], Q["bikes_p90"]]]
    assert (bikes >= 0).all() and (bikes <= cap[:, None, None]).all() and (bikes == np.round(bikes)).all()
    assert (q[:, :, Q["bikes_p10"]] <= q[:, :, Q["bikes_p50"]]).all()
    assert (q[:, :, Q["bikes_p50"]] <= q[:, :, Q["bikes_p90"]]).all()
    for p in ("p_empty", "p_full"):
        v = q[:, :, Q[p]]
        assert ((v >= 0) & (v <= 1)).all() and (np.round(v, 3) == v).all()


def test_the_interval_covers_eighty_percent_of_outcomes_like_those_it_was_calibrated_on():
    spec, _ = calibrated(seed=0)
    _, (pred, actual, cap, horizon, _) = calibrated(seed=1)
    q = D.Distribution(spec).quantities(np.repeat(pred[:, None], F.MAX_HORIZON, axis=1), cap)
    rows = np.arange(len(pred))
    lo, hi = q[rows, horizon - 1, Q["bikes_p10"]], q[rows, horizon - 1, Q["bikes_p90"]]
    cover = ((actual >= lo) & (actual <= hi)).mean()
    assert 0.75 <= cover <= 0.9, cover  # whole bikes: the rounded bounds include their own value
    empty = q[rows, horizon - 1, Q["p_empty"]]
    assert abs(empty.mean() - (actual == 0).mean()) < 0.01, "p_empty is calibrated on average"
    full = q[rows, horizon - 1, Q["p_full"]]
    assert abs(full.mean() - (actual >= cap).mean()) < 0.01, "p_full is calibrated on average"


def test_about_one_whole_count_in_ten_falls_below_p10_and_one_above_p90_at_every_horizon():
    """Whole-bike outcomes: a rounded level includes its own value, so the nominal 10th and 90th levels
    held more than 80 %; the calibrated levels leave about 10 % in each tail, the short horizons included."""
    spec, _ = calibrated(scale=0.5, seed=0)
    _, (pred, actual, cap, horizon, _) = calibrated(scale=0.5, seed=1)
    q = D.Distribution(spec).quantities(np.repeat(pred[:, None], F.MAX_HORIZON, axis=1), cap)
    rows = np.arange(len(pred))
    below = actual < q[rows, horizon - 1, Q["bikes_p10"]]
    above = actual > q[rows, horizon - 1, Q["bikes_p90"]]
    for h in (1, 2, 3, F.MAX_HORIZON):
        at = horizon == h
        assert abs(below[at].mean() - D.TAIL) < 0.04 and abs(above[at].mean() - D.TAIL) < 0.04, (h, below[at].mean(),
                                                                                                above[at].mean())
    nominal = dict(spec, quantile_levels={name: [k] * F.MAX_HORIZON for name, k in D.QUANTILE_LEVELS.items()})
    wide = D.Distribution(nominal).quantities(np.repeat(pred[:, None], F.MAX_HORIZON, axis=1), cap)
    short = horizon == 1
    lo, hi = wide[rows, horizon - 1, Q["bikes_p10"]], wide[rows, horizon - 1, Q["bikes_p90"]]
    assert ((actual >= lo) & (actual <= hi))[short].mean() > 0.85, "the nominal levels over-cover whole counts"


def test_a_distribution_without_ordered_quantile_levels_is_refused():
    spec, _ = calibrated()
    for levels in (None, {"bikes_p10": [50] * F.MAX_HORIZON, "bikes_p50": [49] * F.MAX_HORIZON,
                          "bikes_p90": [89] * F.MAX_HORIZON}):
        with pytest.raises(ModelLoadError, match="quantile_levels"):
            D.Distribution(dict(spec, quantile_levels=levels))


def stations_with_habits(seed, n=60_000):
    """Pairs whose stations empty by habit: half of them are found empty 60 % of the time whatever the
    forecast said (their climatology 0.6), the others almost never (0.02)."""
    rng = np.random.default_rng(seed)
    cap = rng.integers(10, 60, n).astype(float)
    pred = rng.uniform(0.2, 1, n) * cap
    horizon = rng.integers(1, F.MAX_HORIZON + 1, n)
    habit = np.where(rng.random(n) < 0.5, 0.6, 0.02)
    actual = np.clip(np.round(pred + rng.normal(0, 2 * np.sqrt(horizon))), 0, cap)
    actual[rng.random(n) < habit] = 0
    climatology = np.column_stack([habit, np.full(n, 0.05)])
    return pred, actual, cap, horizon, climatology


def test_a_stations_habit_of_emptying_sharpens_p_empty_beyond_its_forecasts_bin_and_its_habit_alone():
    pred, actual, cap, horizon, climatology = stations_with_habits(0)
    spec = D.calibrate(pred, actual, cap, horizon, pred, climatology)
    pred, actual, cap, horizon, climatology = stations_with_habits(1)
    rows = np.arange(len(pred))
    dist = D.Distribution(spec)
    preds = np.repeat(pred[:, None], F.MAX_HORIZON, axis=1)
    clim = np.repeat(climatology[:, None, :], F.MAX_HORIZON, axis=1)
    blended = dist.quantities(preds, cap, climatology=clim)[rows, horizon - 1, Q["p_empty"]]
    levels_only = dist.quantities(preds, cap)[rows, horizon - 1, Q["p_empty"]]
    empty = (actual == 0).astype(float)
    brier = {name: float(((p - empty) ** 2).mean()) for name, p in
             (("blend", blended), ("levels", levels_only), ("habit", climatology[:, 0]))}
    assert brier["blend"] < min(brier["levels"], brier["habit"]), brier
    w = np.asarray(spec["event_weights"]["p_empty"])
    assert ((w >= 0) & (w < 1)).all(), ("the habit takes weight at every horizon", w)


def test_errors_grow_with_the_horizon():
    spec, _ = calibrated()
    r = np.asarray(spec["residuals"])
    width = r[:, 2:6, D.QUANTILE_LEVELS["bikes_p90"]] - r[:, 2:6, D.QUANTILE_LEVELS["bikes_p10"]]
    assert (width[-1] > 2 * width[0]).all(), "the middle bins (the edge ones hold too few pairs per horizon)"


def test_a_near_empty_forecast_is_likely_empty_a_near_full_one_likely_full():
    spec, _ = calibrated()
    q = D.Distribution(spec).quantities(np.array([[0.0] * F.MAX_HORIZON, [30.0] * F.MAX_HORIZON]),
                                        np.array([30.0, 30.0]))
    assert (q[0, :, Q["p_empty"]] > q[1, :, Q["p_empty"]]).all()
    assert (q[1, :, Q["p_full"]] > q[0, :, Q["p_full"]]).all()


def test_a_sparse_cell_takes_its_bins_levels_pooled_over_horizons():
    rng = np.random.default_rng(2)
    n = 24 * 400
    horizon = np.repeat(np.arange(1, 25), 400)
    pred, cap = np.where(np.arange(n) % 40 == 0, 0.5, 15.0), np.full(n, 30.0)  # 10 near-empty pairs per horizon
    spec = D.calibrate(pred, np.clip(pred + rng.normal(0, 2, n), 0, 30), cap, horizon, pred)
    r = np.asarray(spec["residuals"])
    assert (r[:, 0] == r[0, 0]).all(), "the near-empty bin: 240 pairs over every horizon, one set of levels"
    assert r[0, 0, 0] == 0.0 or r[0, 0, 0] < -0.9, "...its own: a near-empty forecast mostly stays or empties"
    middle = int(D.occupancy_bin(np.array([15.0]), np.array([30.0]))[0])
    assert not (r[:, middle] == r[0, middle]).all(), "the middle bin has 390 pairs per horizon: levels of its own"


def test_a_distribution_that_is_not_ascending_or_of_other_bins_is_refused():
    spec, _ = calibrated()
    bad = dict(spec, residuals=[[list(reversed(c)) for c in h] for h in spec["residuals"]])
    with pytest.raises(ModelLoadError, match="distribution.json"):
        D.Distribution(bad)
    with pytest.raises(ModelLoadError, match="distribution.json"):
        D.Distribution(dict(spec, occupancy_edges=[0.5]))


def test_a_row_the_profile_serves_takes_the_profiles_own_levels_and_covers_eighty_percent():
    """The profile knows no state: placed around it, the model's levels (narrow at short horizons) would
    miss most outcomes; its own levels, calibrated on its own residuals, cover about 80 %."""
    spec, _ = calibrated(seed=0)
    _, (_, actual, cap, horizon, profile) = calibrated(seed=1)
    rows, preds = np.arange(len(actual)), np.repeat(profile[:, None], F.MAX_HORIZON, axis=1)
    dist = D.Distribution(spec)

    def cover(q):
        lo, hi = q[rows, horizon - 1, Q["bikes_p10"]], q[rows, horizon - 1, Q["bikes_p90"]]
        inside = (actual >= lo) & (actual <= hi)
        return [inside[horizon == h].mean() for h in (1, F.MAX_HORIZON)]

    served_as_profile = dist.quantities(preds, cap, np.full(preds.shape, F.PROFILE))
    assert all(0.75 <= c <= 0.9 for c in cover(served_as_profile)), cover(served_as_profile)
    assert (served_as_profile[:, :, Q["fallback"]] == F.PROFILE).all()
    assert cover(dist.quantities(preds, cap))[0] < 0.5, "the model's T+1 h levels around the profile"
    mixed = np.full(preds.shape, F.MODEL)
    mixed[::2] = F.PROFILE
    np.testing.assert_array_equal(dist.quantities(preds, cap, mixed)[::2], served_as_profile[::2])


def test_a_distribution_without_the_profiles_own_levels_is_refused_naming_the_retrain():
    spec, _ = calibrated()
    with pytest.raises(ModelLoadError, match="profile fallback.*retrain it: velibcast train"):
        D.Distribution({k: v for k, v in spec.items() if k != "profile"})
    with pytest.raises(ModelLoadError, match="profile residual levels"):
        D.Distribution(dict(spec, profile=dict(spec["profile"], residuals=spec["residuals"][0][:-1])))
    with pytest.raises(ModelLoadError, match="profile quantile_levels"):
        D.Distribution(dict(spec, profile=dict(spec["profile"], quantile_levels={"bikes_p10": 50})))
