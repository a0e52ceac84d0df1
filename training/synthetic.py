"""A small hourly state grid with daily patterns, for tests and for training without snapshots.

Same attributes as velibcast.datasets' StateGrid, so training code cannot tell them apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from velibcast.timeutil import UTC
from velibcast.training import package
from velibcast.training.gbm import gbm_config
from velibcast.training.samples import samples_from_grid, station_mapping
from velibcast.training.train import fit_family
from velibcast.transform_code import velib_distribution, velib_gbm, velib_profile
from velibcast.transform_code import velib_features as F


@dataclass
class SyntheticGrid:
    hours: list[datetime]
    station_codes: list[str]
    bikes: np.ndarray
    installed: np.ndarray
    renting: np.ndarray
    capacity: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    age_s: np.ndarray | None = None  # seconds from each state's observation to its hour


def make_grid(n_stations: int, n_hours: int, start: datetime, seed: int = 0, gap_rate: float = 0.01) -> SyntheticGrid:
    """Residential stations empty in the morning, office ones fill; noise and missed hours (NaN); each state
    observed up to an hour before its hour, as hourly captures at irregular minutes leave them."""
    rng = np.random.default_rng(seed)
    hours = [start + timedelta(hours=i) for i in range(n_hours)]
    hour_of_day = np.array([(h.hour + 2) % 24 for h in hours], dtype=np.float64)  # Paris summer time
    cap = rng.integers(12, 60, n_stations).astype(np.float64)
    phase = rng.choice([0.0, np.pi], n_stations)
    level = 0.5 + 0.35 * np.sin(2 * np.pi * (hour_of_day[None, :] - 8) / 24 + phase[:, None])
    bikes = np.clip(np.round(level * cap[:, None] + rng.normal(0, 1.5, (n_stations, n_hours))), 0, cap[:, None])
    bikes[rng.random(bikes.shape) < gap_rate] = np.nan
    ones = np.ones((n_stations, n_hours), bool)
    return SyntheticGrid(
        hours=hours,
        station_codes=[f"{10000 + i}" for i in range(n_stations)],
        bikes=bikes,
        installed=ones,
        renting=ones.copy(),
        capacity=np.repeat(cap[:, None], n_hours, axis=1),
        lat=np.repeat((48.85 + rng.normal(0, 0.02, n_stations))[:, None], n_hours, axis=1),
        lon=np.repeat((2.35 + rng.normal(0, 0.03, n_stations))[:, None], n_hours, axis=1),
        age_s=rng.integers(0, 3600, (n_stations, n_hours)),
    )


def _archive(config: dict, artifacts: dict, n_stations: int, version: str) -> bytes:
    return package.build_archive({
        "config.json": dict(config, n_stations=n_stations),
        "station_mappings.json": {"unknown_station_index": F.UNKNOWN_STATION_INDEX,
                                  "station_index": station_mapping(f"{10000 + i}" for i in range(n_stations))},
        "metadata.json": {"version": version, "family": "gbm", "training_data": None, "metrics": None},
        **artifacts,
    })


def untrained_archive(n_stations: int = 20, seed: int = 0) -> bytes:
    """A complete gbm model.tar.gz with random trees, profiles and distribution, no fit: for handler
    tests and the bench, where what matters is the shapes and the code path, not the forecasts. The
    trees move forecasts off persistence, so rounding and clamping are exercised."""
    rng = np.random.default_rng(seed)
    n_trees, n_feat = 12, len(velib_gbm.DERIVED_FEATURES)
    # Stumps: node 3k splits, 3k+1 and 3k+2 are its leaves (a leaf points to itself).
    nodes: dict[str, list] = {"feature": [], "threshold": [], "left": [], "right": [], "value": []}
    for k in range(n_trees):
        i = 3 * k
        nodes["feature"] += [int(rng.integers(n_feat)), 0, 0]
        nodes["threshold"] += [float(rng.random()), None, None]
        nodes["left"] += [i + 1, i + 1, i + 2]
        nodes["right"] += [i + 2, i + 1, i + 2]
        nodes["value"] += [0.0, *rng.normal(0, 0.15, 2).tolist()]
    trees = {"ensembles": [{"horizons": [1, F.MAX_HORIZON], "nodes": nodes, "roots": [3 * k for k in range(n_trees)],
                            "depth": 1}]}
    x = np.zeros((2 * 24 * n_stations, len(F.FEATURE_COLUMNS)))  # every station, day type and hour once
    x[:, F.COL["station_index"]] = np.repeat(np.arange(1, n_stations + 1), 48)
    x[:, F.COL[F.NON_WORKING]] = np.tile(np.repeat([0, 1], 24), n_stations)
    x[:, F.COL["hour"]] = np.tile(np.arange(24), 2 * n_stations)
    profiles = velib_profile.build(x, rng.random(len(x)))
    events = {name: velib_profile.build(x, rng.random(len(x)) < 0.2) for name in velib_profile.EVENTS}
    n_pairs = 24 * 9 * 400
    pred, horizon = rng.uniform(0, 30, n_pairs), rng.integers(1, F.MAX_HORIZON + 1, n_pairs)
    actual = np.clip(np.round(pred + rng.normal(0, 1 + horizon / 4)), 0, 30)
    profile = rng.uniform(0, 30, n_pairs)
    dist = velib_distribution.calibrate(pred, actual, np.full(n_pairs, 30.0), horizon, profile,
                                        rng.random((n_pairs, 2)) < 0.2)
    return _archive(gbm_config(False), {velib_gbm.TREES: trees, velib_profile.FILE: profiles,
                                        velib_profile.EVENTS_FILE: events, velib_distribution.FILE: dist},
                    n_stations, f"untrained-{seed}")


def gbm_archive(n_stations: int = 20, seed: int = 0, rounds: int = 8) -> bytes:
    """A complete model.tar.gz of the gbm family, fitted briefly on a synthetic grid with its calibrated
    distribution (training.train.fit_family): for handler, toolkit and server tests."""
    grid = make_grid(n_stations, 24 * 4, datetime(2022, 5, 20, tzinfo=UTC), seed=seed)
    samples = samples_from_grid(grid, station_mapping(grid.station_codes))
    fitted = fit_family("gbm", samples, n_stations, seed, progress=lambda line: None, rounds=rounds)
    return _archive(fitted.config, fitted.artifacts, n_stations, f"gbm-synthetic-{seed}")
