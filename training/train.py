"""Train a model family on a span of snapshots, backtest it, package it.

Families (`velibcast train --family`): `gbm` (the shipped default: LightGBM on engineered
features, exported as JSON trees, training/gbm.py) and `lstm` (the seed network).

Bounded and repeatable: every random draw comes from `seed`; the LSTM uses
TRAIN_TORCH_THREADS threads and stops at TRAIN_MAX_EPOCHS or once the process has used
`max_seconds` of CPU time (time.process_time, all threads), checked after each epoch. CPU
time, not wall time, so other work on the machine does not cut training short; a cut still
depends on the machine's speed, so metadata.json records it. Every epoch or boosting round
block prints a progress line with the elapsed time.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import torch

from velibcast import constants as C
from velibcast import storage as st
from velibcast.datasets.report import SkipReport
from velibcast.errors import ConfigError
from velibcast.timeutil import UTC, iso_minute, iso_second
from velibcast.training import evaluate, package, registry
from velibcast.training.backtest import rolling_origin
from velibcast.training.gbm import fit_gbm, gbm_params
from velibcast.training.samples import Samples, samples_from_grid, station_mapping, stream_samples, time_split
from velibcast.transform_code import velib_features as F
from velibcast.transform_code.velib_gbm import GbmForecaster
from velibcast.transform_code.velib_lstm import DEFAULT_CONFIG, VelibLSTM

Progress = Callable[[str], None]


@dataclass
class Fitted:
    """A trained candidate: what to package and how it predicts (bikes, unrounded)."""
    family: str
    config: dict
    predict: Callable[[np.ndarray], np.ndarray]
    info: dict
    state_dict: dict | None = None
    artifacts: dict = field(default_factory=dict)  # extra JSON files of model.tar.gz
    train_config: dict = field(default_factory=dict)


def train_config() -> dict:
    return {
        "max_epochs": C.TRAIN_MAX_EPOCHS,
        "batch_size": C.TRAIN_BATCH_SIZE,
        "learning_rate": C.TRAIN_LEARNING_RATE,
        "station_dropout": C.TRAIN_STATION_DROPOUT,
        "val_fraction": C.TRAIN_VAL_FRACTION,
        "test_fraction": C.TRAIN_TEST_FRACTION,
        "loss": "l1_bikes",
        "torch_threads": C.TRAIN_TORCH_THREADS,
    }


def fit_scaler(x: np.ndarray) -> dict:
    out = {}
    for name in ("capacity", "lat", "lon"):
        col = x[:, F.COL[name]].astype(np.float64)
        std = float(col.std())
        out[name] = {"mean": float(col.mean()), "std": std if std > 1e-9 else 1.0}
    return out


def fit(parts: dict[str, Samples], n_stations: int, seed: int, max_seconds: float, tc: dict,
        progress: Progress = print):
    """Adam on L1 in bikes (the metric); keeps the epoch with the best validation MAE."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    train, val = parts["train"], parts["val"]
    config = dict(DEFAULT_CONFIG, family="lstm", n_stations=n_stations, feature_columns=F.FEATURE_COLUMNS,
                  feature_contract=F.FEATURE_CONTRACT, output_columns=F.OUTPUT_COLUMNS,
                  persistence_on_non_working_days=not bool((train.x[:, F.COL[F.NON_WORKING]] == 1).any()))
    scaler = fit_scaler(train.x)
    net = VelibLSTM(config, scaler)
    opt = torch.optim.Adam(net.parameters(), lr=tc["learning_rate"])
    xt, yt = torch.from_numpy(train.x), torch.from_numpy(train.y)
    st_col = xt[:, F.COL["station_index"]].long()
    best: tuple[float, dict[str, Any] | None, int] = (float("inf"), None, 0)
    history = []
    cpu0, wall0 = time.process_time(), time.monotonic()
    cut_by_time = False
    for epoch in range(1, tc["max_epochs"] + 1):
        net.train()
        order = torch.from_numpy(rng.permutation(len(train)))
        masked = torch.from_numpy(rng.random(len(train)) < tc["station_dropout"])
        stations = torch.where(masked, torch.full_like(st_col, F.UNKNOWN_STATION_INDEX), st_col)
        for i in range(0, len(order), tc["batch_size"]):
            b = order[i : i + tc["batch_size"]]
            loss = torch.nn.functional.l1_loss(net(xt[b], stations[b]), yt[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
        val_mae = float(np.abs(evaluate.predict(net, val.x) - val.y).mean()) if len(val) else float(loss)
        history.append({"epoch": epoch, "val_mae_unrounded": round(val_mae, 4)})
        progress(f"lstm epoch {epoch}/{tc['max_epochs']}: val MAE {val_mae:.4f} bikes, "
                 f"{time.monotonic() - wall0:.1f} s elapsed")
        if val_mae < best[0]:
            best = (val_mae, copy.deepcopy(net.state_dict()), epoch)
        if time.process_time() - cpu0 > max_seconds:
            cut_by_time = epoch < tc["max_epochs"]
            break
    if best[1] is None:
        raise ConfigError(f"lstm training: no epoch gave a finite validation MAE ({history[-1] if history else 'no epoch'}); "
                          "check the training samples for NaN")
    net.load_state_dict(best[1])
    net.eval()
    return net, config, scaler, {"best_epoch": best[2], "epochs_run": len(history),
                                 "stopped_by_time_limit": cut_by_time, "history": history}


def fit_family(family: str, samples: Samples, n_stations: int, seed: int, max_seconds: float,
               progress: Progress = print) -> Fitted:
    if family == "gbm":
        config, trees, info = fit_gbm(samples, seed, progress)
        config["n_stations"] = n_stations
        return Fitted("gbm", config, GbmForecaster(config, trees).predict, info, None, {"trees.json": trees},
                      dict(gbm_params(seed), rounds=C.GBM_ROUNDS, target="change_over_capacity",
                           loss="l1_capacity_weighted"))
    if family == "lstm":
        torch.set_num_threads(C.TRAIN_TORCH_THREADS)
        tc = train_config()
        parts = time_split(samples, tc["val_fraction"], tc["test_fraction"])
        for name, part in parts.items():
            if len(part) == 0:
                raise ConfigError(f"the {name} part of the training span has no samples; train on a longer span")
        net, config, scaler, info = fit(parts, n_stations, seed, max_seconds, tc, progress)
        info["mae_test"] = evaluate.mae_table(lambda x: evaluate.predict(net, x), parts["test"].x, parts["test"].y)
        info["split"] = {name: _span(part) for name, part in parts.items()}
        # A CPU-time cut depends on the machine: the epochs actually trained are part of the identity.
        return Fitted("lstm", config, lambda x: evaluate.predict(net, x), info, net.state_dict(),
                      {"scaler.json": scaler},
                      dict(tc, epochs_run=info["epochs_run"], best_epoch=info["best_epoch"]))
    raise ConfigError(f"model family {family!r}: use one of {', '.join(C.TRAIN_FAMILIES)}")


def train_on_samples(samples: Samples, mapping: dict[str, int], storage: st.Storage, out_root: str,
                     start: datetime, end: datetime, family: str | None = None, seed: int | None = None,
                     max_seconds: float | None = None, data_report: dict | None = None, backtest: bool = True,
                     progress: Progress = print) -> dict:
    """Fit `family` on every sample, backtest it over the span (rolling origin), package it under
    <out_root>/models/<version>/. Returns {version, model_uri, metrics}."""

    family = family or C.TRAIN_FAMILY
    seed = C.TRAIN_SEED if seed is None else seed
    max_seconds = C.TRAIN_MAX_SECONDS if max_seconds is None else max_seconds
    cpu0, wall0 = time.process_time(), time.monotonic()
    progress(f"training {family} on {len(samples)} samples of {iso_minute(start)}..{iso_minute(end)}")
    fitted = fit_family(family, samples, len(mapping), seed, max_seconds, progress)
    metrics = {"fit": fitted.info,
               "in_sample": evaluate.mae_table(fitted.predict, samples.x, samples.y),
               "train_cpu_seconds": round(time.process_time() - cpu0, 1),
               "train_wall_seconds": round(time.monotonic() - wall0, 1)}
    if family == "lstm":
        metrics["mae_test"] = fitted.info.pop("mae_test")
        metrics["split"] = fitted.info.pop("split")
    if backtest:
        metrics["backtest"] = rolling_origin(samples, [family], seed, max_seconds, progress)
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
        "torch_version": torch.__version__,
    }
    archive = package.build_archive(fitted.state_dict, {
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
                  seed: int | None = None, max_seconds: float | None = None,
                  data_report: dict | None = None, family: str | None = None, backtest: bool = True,
                  progress: Progress = print) -> dict:
    """None for seed, max_seconds or family means the default in velibcast.constants."""
    mapping = station_mapping(grid.station_codes)
    return train_on_samples(samples_from_grid(grid, mapping), mapping, storage, out_root, start, end, family,
                            seed, max_seconds, data_report, backtest, progress)


def train_model(storage: st.Storage, snapshots_root: str, start: datetime, end: datetime, out_root: str,
                seed: int | None = None, max_seconds: float | None = None, family: str | None = None,
                backtest: bool = True, progress: Progress = print) -> dict:
    """Samples of [start, end] streamed from the snapshot store, then train_on_samples.
    Returns {version, model_uri, metrics}; the model is <out_root>/models/<version>/model.tar.gz."""

    start, end = _hour(start), _hour(end)
    report = SkipReport()
    t0 = time.monotonic()
    samples, mapping = stream_samples(storage, snapshots_root, start, end, report)
    progress(f"read {len(samples)} samples of {len(mapping)} stations in {time.monotonic() - t0:.1f} s")
    if len(samples) == 0:
        raise ConfigError(f"{iso_minute(start)}..{iso_minute(end)} holds no origin with 24 h of history and "
                         "3 h of targets in this store; train on a longer span")
    return train_on_samples(samples, mapping, storage, out_root, start, end, family, seed, max_seconds,
                            report.to_dict(), backtest, progress)


def _hour(t: datetime) -> datetime:
    if t.tzinfo is None:
        raise ConfigError(f"{t.isoformat()} has no time zone; give UTC times, e.g. 2022-05-23T00:00Z")
    return t.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _iso(t: datetime) -> str:
    return iso_second(t.astimezone(UTC))


def _span(part: Samples) -> dict:
    if len(part) == 0:
        return {"samples": 0}
    return {"samples": len(part), "first_origin": _iso(part.hours[int(part.origin.min())]),
            "last_origin": _iso(part.hours[int(part.origin.max())])}
