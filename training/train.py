"""Train a model family on a span of snapshots, backtest it, package it.

Family (`velibcast train --family`): `gbm`, LightGBM on engineered features exported as JSON
trees (training/gbm.py). The predictive distribution around its forecasts is calibrated on
the span's latest origins, held out of a first, lighter fit (velib_distribution): residuals of
origins its trees never saw, as serving will meet, and nothing after the span. The model served
is then fitted on the whole span: the latest days are the ones most like tomorrow, and leaving
them out of the served trees and profiles cost the nowcast much of its gain at T+1 h
(rolling-origin backtest).

Repeatable: every random draw comes from `seed`. Every block of boosting rounds prints a
progress line with the elapsed time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from velibcast import constants as C
from velibcast import storage as st
from velibcast.datasets.report import SkipReport
from velibcast.errors import ConfigError
from velibcast.timeutil import UTC, iso_minute, iso_second
from velibcast.training import package, registry
from velibcast.training.backtest import rolling_origin
from velibcast.training.gbm import fit_gbm, forecaster, gbm_params
from velibcast.training.samples import Samples, as_stale, samples_from_grid, station_mapping, stream_samples
from velibcast.transform_code import inference, velib_distribution
from velibcast.transform_code import velib_features as F
from velibcast.transform_code.velib_gbm import GbmForecaster

Progress = Callable[[str], None]
# The calibration's fit takes these shares of the served fit's rounds and rows: its residuals only
# need to be those of a model like the served one, and the two fits must stay within a minute of CPU.
CALIBRATION_FIT_ROUNDS = 0.67
CALIBRATION_FIT_ROWS = 0.5


@dataclass
class Fitted:
    """A trained candidate: what to package and how it predicts."""
    family: str
    config: dict
    predict: Callable[[np.ndarray], np.ndarray]  # rows -> bikes (n, MAX_HORIZON), unrounded
    fallback: Callable[[np.ndarray], np.ndarray]  # rows -> FALLBACKS code of each horizon (n, MAX_HORIZON)
    climatology: Callable[[np.ndarray], np.ndarray]  # rows -> frequency of empty, full at each target (n, H, 2)
    distribution: velib_distribution.Distribution
    info: dict
    artifacts: dict  # the JSON files of model.tar.gz besides config, mappings and metadata
    train_config: dict

    def quantities(self, x: np.ndarray) -> np.ndarray:
        """The OUTPUT_QUANTITIES (n, MAX_HORIZON, len(OUTPUT_QUANTITIES)) as the handlers serve them."""
        return inference.LoadedModel(self.predict, self.fallback, self.climatology, self.distribution,
                                     self.config["n_stations"], None, self.config["architecture"]).quantities(x)


def calibration_split(samples: Samples) -> tuple[Samples, Samples]:
    """(fit part: targets before the held-out origins; held-out part: the latest origin hours)."""
    hours = np.unique(samples.origin)
    if len(hours) < 2:
        raise ConfigError(f"{len(hours)} origin hour(s) cannot be split into a fit and a calibration part; "
                          "train on a longer span")
    start = hours[min(len(hours) - 1, int(len(hours) * (1 - C.TRAIN_CALIBRATION_FRACTION)))]
    return samples.targets_before(int(start)), samples.take(samples.origin >= start)


def calibrate(model: GbmForecaster, held_out: Samples, seed: int) -> dict:
    """distribution.json from the residuals of up to TRAIN_CALIBRATION_ORIGINS held-out origins, and of the
    profile the model serves the same windows when their state is stale, with the events' outcomes
    against the model's climatology of them."""
    rng = np.random.default_rng(seed)
    pick = np.arange(len(held_out))
    if len(pick) > C.TRAIN_CALIBRATION_ORIGINS:
        pick = np.sort(rng.choice(len(pick), C.TRAIN_CALIBRATION_ORIGINS, replace=False))
    x, y = held_out.x[pick].astype(np.float64), held_out.y[pick].astype(np.float64)
    pred = model.predict(x)
    cap = np.broadcast_to(x[:, F.COL["capacity"]][:, None], y.shape)
    horizon = np.broadcast_to(np.arange(1, F.MAX_HORIZON + 1)[None, :], y.shape)
    profile = model.predict(as_stale(x))
    seen = np.isfinite(y)
    return velib_distribution.calibrate(pred[seen], y[seen], cap[seen], horizon[seen], profile[seen],
                                        model.climatology(x)[seen])


def fit_family(family: str, samples: Samples, n_stations: int, seed: int, progress: Progress = print,
               rounds: int | None = None) -> Fitted:
    """`rounds`: boosting rounds, None for GBM_ROUNDS (tests fit a few)."""
    if family not in C.TRAIN_FAMILIES:
        raise ConfigError(f"model family {family!r}: use one of {', '.join(C.TRAIN_FAMILIES)}")
    rounds = rounds or C.GBM_ROUNDS
    fit_part, held_out = calibration_split(samples)
    progress(f"fit for the calibration on {len(fit_part)} origins")
    spec = calibrate(forecaster(*fit_gbm(fit_part, seed, progress, max(1, int(rounds * CALIBRATION_FIT_ROUNDS)),
                                          int(C.GBM_MAX_ROWS * CALIBRATION_FIT_ROWS))[:2], n_stations),
                     held_out, seed)
    progress(f"calibrated the distribution on {min(len(held_out), C.TRAIN_CALIBRATION_ORIGINS)} held-out origins; "
             f"fit on the whole span ({len(samples)} origins)")
    config, artifacts, info = fit_gbm(samples, seed, progress, rounds)
    config["n_stations"] = n_stations
    served = forecaster(config, artifacts, n_stations)
    info["calibration"] = {"fit_origins": len(fit_part), "held_out_origins": len(held_out),
                           "first_held_out_origin": _iso(samples.hours[int(held_out.origin.min())])}
    return Fitted("gbm", config, served.predict, served.fallback, served.climatology,
                  velib_distribution.Distribution(spec), info,
                  {**artifacts, velib_distribution.FILE: spec},
                  dict(gbm_params(seed), rounds=C.GBM_ROUNDS, max_rows=C.GBM_MAX_ROWS, target="change_over_capacity",
                       loss="l1_capacity_weighted", calibration_fraction=C.TRAIN_CALIBRATION_FRACTION,
                       calibration_fit_rounds=CALIBRATION_FIT_ROUNDS, calibration_fit_rows=CALIBRATION_FIT_ROWS))


def train_on_samples(samples: Samples, mapping: dict[str, int], storage: st.Storage, out_root: str,
                     start: datetime, end: datetime, family: str | None = None, seed: int | None = None,
                     data_report: dict | None = None, backtest: bool = True, progress: Progress = print) -> dict:
    """Fit `family` on the span, backtest it over the span (rolling origin), package it under
    <out_root>/models/<version>/. Returns {version, model_uri, metrics}."""

    family = family or C.TRAIN_FAMILY
    seed = C.TRAIN_SEED if seed is None else seed
    cpu0, wall0 = time.process_time(), time.monotonic()
    progress(f"training {family} on {len(samples)} samples of {iso_minute(start)}..{iso_minute(end)}")
    fitted = fit_family(family, samples, len(mapping), seed, progress)
    metrics = {"fit": fitted.info,
               "train_cpu_seconds": round(time.process_time() - cpu0, 1),
               "train_wall_seconds": round(time.monotonic() - wall0, 1)}
    if backtest:
        metrics["backtest"] = rolling_origin(samples, [family], seed, progress)
    version = package.model_version(start, end, fitted.config, fitted.train_config, seed)
    metadata = {
        "version": version,
        "family": family,
        "architecture": fitted.config["architecture"],
        "training_data": {"start": _iso(start), "end": _iso(end), "stations": len(mapping),
                          "samples": len(samples), "skips": data_report or {}},
        "seed": seed,
        "train_config": fitted.train_config,
        "metrics": metrics,
    }
    archive = package.build_archive({
        "config.json": fitted.config,
        "station_mappings.json": {"unknown_station_index": F.UNKNOWN_STATION_INDEX, "station_index": mapping},
        "metadata.json": metadata,
        **fitted.artifacts,
    })
    uri = package.write_model(storage, out_root, version, archive)
    registry.write_metrics(storage, out_root, version, metrics)
    progress(f"model {version}: {uri} ({time.monotonic() - wall0:.1f} s)")
    return {"version": version, "model_uri": uri, "metrics": metrics}


def train_on_grid(grid, storage: st.Storage, out_root: str, start: datetime, end: datetime,
                  seed: int | None = None, data_report: dict | None = None, family: str | None = None,
                  backtest: bool = True, progress: Progress = print) -> dict:
    """None for seed or family means the default in velibcast.constants."""
    mapping = station_mapping(grid.station_codes)
    return train_on_samples(samples_from_grid(grid, mapping), mapping, storage, out_root, start, end, family,
                            seed, data_report, backtest, progress)


def train_model(storage: st.Storage, snapshots_root: str, start: datetime, end: datetime, out_root: str,
                seed: int | None = None, family: str | None = None,
                backtest: bool = True, progress: Progress = print, states_root: str | None = None) -> dict:
    """Samples of [start, end] streamed from the snapshot store (the hours settled in the stored
    states under states_root read from them: the same samples), then train_on_samples.
    Returns {version, model_uri, metrics}; the model is <out_root>/models/<version>/model.tar.gz."""

    start, end = _hour(start), _hour(end)
    report = SkipReport()
    t0 = time.monotonic()
    samples, mapping = stream_samples(storage, snapshots_root, start, end, report, states_root=states_root)
    progress(f"read {len(samples)} samples of {len(mapping)} stations in {time.monotonic() - t0:.1f} s")
    if len(samples) == 0:
        raise ConfigError(f"{iso_minute(start)}..{iso_minute(end)} holds no origin with 24 h of history and "
                         "an observed target in this store; train on a longer span")
    return train_on_samples(samples, mapping, storage, out_root, start, end, family, seed, report.to_dict(),
                            backtest, progress)


def _hour(t: datetime) -> datetime:
    if t.tzinfo is None:
        raise ConfigError(f"{t.isoformat()} has no time zone; give UTC times, e.g. 2022-05-23T00:00Z")
    return t.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _iso(t: datetime) -> str:
    return iso_second(t.astimezone(UTC))
