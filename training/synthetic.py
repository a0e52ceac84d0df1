"""A small hourly state grid with daily patterns, for tests and for training without snapshots.

Same attributes as velibcast.datasets' StateGrid, so training code cannot tell them apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from velibcast.timeutil import UTC


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


def make_grid(n_stations: int, n_hours: int, start: datetime, seed: int = 0, gap_rate: float = 0.01) -> SyntheticGrid:
    """Residential stations empty in the morning, office ones fill; noise and missed hours (NaN)."""
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
    )


def untrained_archive(n_stations: int = 20, seed: int = 0) -> bytes:
    """A complete model.tar.gz with initialised (untrained) weights: for handler tests and the bench,
    where what matters is the shapes and the code path, not the forecasts."""
    import torch  # lazy: torch (~2 s): only for an LSTM archive

    from velibcast.training import package  # lazy: imports torch: only when an archive is built
    from velibcast.training.samples import station_mapping  # lazy: imports torch: only when an archive is built
    from velibcast.transform_code import velib_features as F  # lazy: imports torch: only when an archive is built

    # lazy: imports torch: only for an LSTM archive
    from velibcast.transform_code.velib_lstm import DEFAULT_CONFIG, VelibLSTM

    torch.manual_seed(seed)
    config = dict(DEFAULT_CONFIG, n_stations=n_stations, feature_columns=F.FEATURE_COLUMNS,
                  output_columns=F.OUTPUT_COLUMNS)
    scaler = {"capacity": {"mean": 31.0, "std": 12.0}, "lat": {"mean": 48.86, "std": 0.03},
              "lon": {"mean": 2.34, "std": 0.05}}
    net = VelibLSTM(config, scaler)
    # Non-zero head, so outputs differ from persistence and rounding/clamping is exercised.
    torch.nn.init.normal_(net.out.weight, std=0.5)
    mapping = station_mapping(f"{10000 + i}" for i in range(n_stations))
    return package.build_archive(net.state_dict(), {
        "config.json": config,
        "scaler.json": scaler,
        "station_mappings.json": {"unknown_station_index": F.UNKNOWN_STATION_INDEX, "station_index": mapping},
        "metadata.json": {"version": f"untrained-{seed}", "training_data": None, "metrics": None},
    })


def gbm_archive(n_stations: int = 20, seed: int = 0, rounds: int = 8) -> bytes:
    """A complete model.tar.gz of the gbm family, fitted briefly on a synthetic grid: for handler
    and toolkit tests, where what matters is that the JSON trees load and answer."""

    from velibcast.training import package  # lazy: imports torch: only when an archive is built
    from velibcast.training.gbm import fit_gbm  # lazy: imports torch: only when an archive is built

    # lazy: imports torch: only when an archive is built
    from velibcast.training.samples import samples_from_grid, station_mapping
    from velibcast.transform_code import velib_features as F  # lazy: imports torch: only when an archive is built

    grid = make_grid(n_stations, 24 * 3, datetime(2022, 5, 20, tzinfo=UTC), seed=seed)
    mapping = station_mapping(grid.station_codes)
    config, trees, _ = fit_gbm(samples_from_grid(grid, mapping), seed, progress=lambda line: None, rounds=rounds)
    config["n_stations"] = n_stations
    return package.build_archive(None, {
        "config.json": config,
        "trees.json": trees,
        "station_mappings.json": {"unknown_station_index": F.UNKNOWN_STATION_INDEX, "station_index": mapping},
        "metadata.json": {"version": f"gbm-synthetic-{seed}", "family": "gbm", "training_data": None, "metrics": None},
    })
