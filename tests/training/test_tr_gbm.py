"""The gbm family: the NumPy evaluator shipped in code/ is LightGBM's own prediction, from JSON;
training derives its features as serving does, from the training span only."""

import json
from datetime import datetime

import numpy as np
import pytest

from velibcast import constants as C
from velibcast.timeutil import UTC
from velibcast.training.gbm import fit_gbm, forecaster, gbm_params, own_value_left_out, training_pairs, trees_spec
from velibcast.training.samples import samples_from_grid, station_mapping
from velibcast.training.synthetic import make_grid
from velibcast.training.train import (
    CALIBRATION_FIT_ROUNDS,
    CALIBRATION_FIT_ROWS,
    calibrate,
    calibration_split,
    fit_family,
)
from velibcast.transform_code import velib_features as F
from velibcast.transform_code import velib_gbm, velib_profile
from velibcast.transform_code.velib_errors import ModelLoadError

START = datetime(2022, 5, 15, 22, tzinfo=UTC)  # Paris Monday 05-16: five working days
QUIET = dict(progress=lambda line: None)


@pytest.fixture(scope="module")
def samples():
    grid = make_grid(30, 24 * 5, START, seed=4)
    return samples_from_grid(grid, station_mapping(grid.station_codes))


@pytest.fixture(scope="module")
def working(samples):
    """The samples with targets in the first three days: Monday..Wednesday."""
    return samples.targets_before(24 * 3)


def test_numpy_trees_reproduce_lightgbm(working, monkeypatch):
    lgb = pytest.importorskip("lightgbm")
    monkeypatch.setattr(C, "GBM_MIN_DATA_IN_LEAF", 5)  # deep trees on a small set: every split path is exercised
    rows, horizon = training_pairs(working, 1, 24, 5000, np.random.default_rng(0))
    profiles = velib_profile.Profiles(velib_profile.build(working.x), 30)
    x = working.x[rows].astype(np.float64)
    z = velib_gbm.derive(x, horizon, *velib_gbm.profile_features(x, horizon, profiles))
    booster = lgb.train(gbm_params(1), lgb.Dataset(z, working.y[rows, horizon - 1] - x[:, 23]), num_boost_round=20)
    spec = json.loads(json.dumps(dict(trees_spec(booster), horizons=[1, 24])))  # through JSON, as shipped
    assert spec["depth"] >= 3
    np.testing.assert_allclose(velib_gbm.Ensemble(spec).predict(z), booster.predict(z), rtol=0, atol=1e-9)


def test_training_profiles_are_serving_profiles_without_the_target_itself(working):
    """A target hour that is also a training origin of its station is in its own profile cell: training leaves it out,
    and is otherwise what serving looks up (so no train/serve skew beyond that one value)."""
    tables = velib_profile.tables(working.x)
    profiles = velib_profile.Profiles(velib_profile.build(working.x), 30)
    rows, horizon = training_pairs(working, 1, 24, 10**9, np.random.default_rng(0))
    x = working.x[rows].astype(np.float64)
    target, now = own_value_left_out(working, rows, horizon, tables)
    served_target, served_now = velib_gbm.profile_features(x, horizon, profiles)
    sums, counts, network = tables
    st = x[:, F.COL["station_index"]].astype(int)
    t_hour, t_day = velib_gbm.target_calendar(x, horizon)
    cell = t_day.astype(int) * 24 + t_hour.astype(int)
    own = working.y[rows, horizon - 1] / np.maximum(x[:, F.COL["capacity"]], 1)
    origins = set(zip(working.x[:, F.COL["station_index"]].astype(int).tolist(), working.origin.tolist()))
    is_origin = np.array([(a, b) in origins for a, b in zip(st.tolist(), (working.origin[rows] + horizon).tolist())])
    expected = velib_profile.shrunk(sums[st, cell] - own, counts[st, cell] - 1, network[cell])
    np.testing.assert_allclose(target[is_origin], expected[is_origin], atol=1e-9)
    np.testing.assert_allclose(target[~is_origin], served_target[~is_origin], atol=1e-4)
    assert is_origin.any() and (~is_origin).any()
    assert np.abs(now - served_now).max() > 0 and np.abs(now - served_now).max() < 0.5


def test_fit_reports_progress_and_beats_persistence_on_an_unseen_day(samples, working):
    lines = []
    config, artifacts, _ = fit_gbm(working, seed=1, progress=lines.append, rounds=50)
    groups = len(C.GBM_HORIZON_GROUPS)
    assert sum("round" in line for line in lines) == groups * (50 // C.GBM_PROGRESS_EVERY)
    assert lines[0].startswith("gbm T+1h: ") and lines[1].startswith("gbm T+1h round 25/50: train L1")
    assert lines[1].endswith("s elapsed")
    model = forecaster(config, artifacts, 30)
    test = samples.take((samples.origin >= 24 * 3) & (samples.origin < 24 * 4))  # Thursday
    cap = test.x[:, F.COL["capacity"]][:, None]
    mae = np.nanmean(np.abs(np.clip(np.round(model.predict(test.x)), 0, cap) - test.y), axis=0)
    persistence = np.nanmean(np.abs(test.x[:, 23:24] - test.y), axis=0)
    assert mae[:3].mean() < persistence[:3].mean() and mae.mean() < persistence.mean(), (mae, persistence)


def test_unseen_non_working_targets_get_persistence(working):
    config, artifacts, _ = fit_gbm(working, seed=1, rounds=5, **QUIET)
    assert config["persistence_on_non_working_days"], "the three days are working days"
    model = forecaster(config, artifacts, 30)
    x = working.x[:50].astype(np.float64)
    x[:, F.COL["hour"]] = 20
    x[:, F.COL[F.NON_WORKING]], x[:, F.COL[F.NON_WORKING_NEXT]] = 0, 1
    pred = model.predict(x)
    # until midnight (T+1..3h) the model forecasts; from T+4h the targets are on the holiday
    np.testing.assert_array_equal(pred[:, 3:], np.repeat(x[:, 23:24], 21, axis=1))
    assert not np.array_equal(pred[:, :3], np.repeat(x[:, 23:24], 3, axis=1))


def test_the_served_model_learns_the_whole_span_and_its_distribution_residuals_the_fit_never_saw(samples):
    """The served trees and profiles are fitted on every target of the span, the latest included; the
    distribution is calibrated on the latest origins by a fit on the targets before them only."""
    fitted = fit_family("gbm", samples, 30, 1, rounds=6, **QUIET)
    _, whole, _ = fit_gbm(samples, seed=1, rounds=6, **QUIET)
    assert fitted.artifacts[velib_gbm.TREES] == whole[velib_gbm.TREES]
    assert fitted.artifacts[velib_profile.FILE] == velib_profile.build(samples.x)
    assert fitted.artifacts[velib_profile.EVENTS_FILE] == velib_profile.build_events(samples.x)
    fit_part, held_out = calibration_split(samples)
    rows, cols = np.nonzero(np.isfinite(fit_part.y))
    assert (fit_part.origin[rows] + cols + 1 < held_out.origin.min()).all(), "no fit target among held-out hours"
    blind = fit_gbm(fit_part, seed=1, rounds=int(6 * CALIBRATION_FIT_ROUNDS),
                    max_rows=int(C.GBM_MAX_ROWS * CALIBRATION_FIT_ROWS), **QUIET)
    assert fitted.artifacts["distribution.json"] == calibrate(forecaster(*blind[:2], 30), held_out, 1)
    changed = samples.take(np.ones(len(samples), bool))
    changed.x[changed.origin >= held_out.origin.min(), :24] = 0  # every held-out station empty
    assert fit_family("gbm", changed, 30, 1, rounds=6, **QUIET).artifacts["distribution.json"] != \
        fitted.artifacts["distribution.json"]


def test_a_model_with_other_derived_features_or_horizons_is_refused(working):
    config, artifacts, _ = fit_gbm(working, seed=1, rounds=2, **QUIET)
    trees = artifacts[velib_gbm.TREES]
    with pytest.raises(ModelLoadError, match="derived_features"):
        forecaster(dict(config, derived_features=config["derived_features"][::-1]), artifacts, 30)
    with pytest.raises(ModelLoadError, match="horizons"):
        forecaster(config, dict(artifacts, **{velib_gbm.TREES: {"ensembles": trees["ensembles"][:1]}}), 30)
