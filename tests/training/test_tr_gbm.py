"""The gbm family: the NumPy evaluator shipped in code/ is LightGBM's own prediction, from JSON."""

import json
from datetime import datetime

import numpy as np
import pytest

from velibcast import constants as C
from velibcast.timeutil import UTC
from velibcast.training.gbm import fit_gbm, gbm_params, trees_spec
from velibcast.training.samples import samples_from_grid, station_mapping
from velibcast.training.synthetic import make_grid
from velibcast.transform_code import velib_features as F
from velibcast.transform_code import velib_gbm
from velibcast.transform_code.velib_errors import ModelLoadError

START = datetime(2022, 5, 23, tzinfo=UTC)  # Monday: three working days


@pytest.fixture(scope="module")
def samples():
    grid = make_grid(30, 24 * 3, START, seed=4)
    return samples_from_grid(grid, station_mapping(grid.station_codes))


def test_numpy_trees_reproduce_lightgbm(samples, monkeypatch):
    lgb = pytest.importorskip("lightgbm")
    monkeypatch.setattr(C, "GBM_MIN_DATA_IN_LEAF", 5)  # deep trees on a small set: every split path is exercised
    z = velib_gbm.derive(samples.x)
    y = samples.y[:, 2] - samples.x[:, F.HISTORY_LEN - 1]
    booster = lgb.train(gbm_params(1), lgb.Dataset(z, y), num_boost_round=20)
    spec = json.loads(json.dumps(trees_spec(booster)))  # through JSON, as shipped
    assert spec["depth"] >= 3
    ours = velib_gbm.Ensemble(spec).predict(z)
    np.testing.assert_allclose(ours, booster.predict(z), rtol=0, atol=1e-9)


def test_fit_reports_progress_with_elapsed_time_and_predicts_change(samples):
    lines = []
    config, trees, info = fit_gbm(samples, seed=1, progress=lines.append, rounds=50)
    assert len(lines) == 3 * (50 // C.GBM_PROGRESS_EVERY)
    assert lines[0].startswith("gbm T+1h round 25/50: train L1") and lines[0].endswith("s elapsed")
    model = velib_gbm.GbmForecaster(config, trees)
    pred = model.predict(samples.x)
    mae = np.abs(np.round(pred) - samples.y).mean(axis=0)
    persistence = np.abs(samples.x[:, F.HISTORY_LEN - 1 : F.HISTORY_LEN] - samples.y).mean(axis=0)
    assert (mae < persistence).all(), (mae, persistence)


def test_unseen_non_working_days_get_persistence(samples):
    config, trees, _ = fit_gbm(samples, seed=1, progress=lambda line: None, rounds=20)
    assert config["persistence_on_non_working_days"], "the three days are working days"
    x = samples.x[:50].copy()
    x[:, F.COL[F.NON_WORKING]] = 1
    model = velib_gbm.GbmForecaster(config, trees)
    np.testing.assert_array_equal(model.predict(x), np.repeat(x[:, F.HISTORY_LEN - 1 : F.HISTORY_LEN], 3, axis=1))
    assert not np.array_equal(model.predict(samples.x[:50]), np.repeat(x[:, F.HISTORY_LEN - 1 : F.HISTORY_LEN], 3, axis=1))


def test_a_model_with_other_derived_features_is_refused(samples):
    config, trees, _ = fit_gbm(samples, seed=1, progress=lambda line: None, rounds=2)
    with pytest.raises(ModelLoadError, match="derived_features"):
        velib_gbm.GbmForecaster(dict(config, derived_features=config["derived_features"][::-1]), trees)
