"""Train the seed LSTM on a span of snapshots, score it against the baselines, package it.

Bounded and repeatable: torch uses TRAIN_TORCH_THREADS threads, every random draw comes
from `seed`, epochs stop at TRAIN_MAX_EPOCHS or once the process has used `max_seconds` of
CPU time (time.process_time, all threads), checked after each epoch. CPU time, not wall
time, so other work on the machine does not cut training short; a cut still depends on the
machine's speed, so metadata.json records it.
"""

from __future__ import annotations

import copy
import time
from datetime import datetime, timedelta

import numpy as np
import torch

from velibcast import constants as C
from velibcast import storage as st
from velibcast.errors import ConfigError
from velibcast.training import evaluate, package
from velibcast.training.samples import Samples, grid_for_samples, samples_from_grid, station_mapping, time_split
from velibcast.transform_code import velib_features as F
from velibcast.transform_code.velib_lstm import DEFAULT_CONFIG, VelibLSTM
from velibcast.timeutil import UTC


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


def fit(parts: dict[str, Samples], n_stations: int, seed: int, max_seconds: float, tc: dict):
    """Adam on L1 in bikes (the metric); keeps the epoch with the best validation MAE."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    train, val = parts["train"], parts["val"]
    config = dict(DEFAULT_CONFIG, n_stations=n_stations, feature_columns=F.FEATURE_COLUMNS,
                  output_columns=F.OUTPUT_COLUMNS,
                  persistence_on_non_working_days=not bool((train.x[:, F.COL["is_weekend"]] == 1).any()))
    scaler = fit_scaler(train.x)
    net = VelibLSTM(config, scaler)
    opt = torch.optim.Adam(net.parameters(), lr=tc["learning_rate"])
    xt, yt = torch.from_numpy(train.x), torch.from_numpy(train.y)
    st_col = xt[:, F.COL["station_index"]].long()
    best = (float("inf"), None, 0)
    history = []
    cpu0 = time.process_time()
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
        if val_mae < best[0]:
            best = (val_mae, copy.deepcopy(net.state_dict()), epoch)
        if time.process_time() - cpu0 > max_seconds:
            cut_by_time = epoch < tc["max_epochs"]
            break
    net.load_state_dict(best[1])
    net.eval()
    return net, config, scaler, {"best_epoch": best[2], "epochs_run": len(history),
                                 "stopped_by_time_limit": cut_by_time, "history": history}


def train_on_grid(grid, storage: st.Storage, out_root: str, start: datetime, end: datetime,
                  seed: int | None = None, max_seconds: float | None = None,
                  data_report: dict | None = None) -> dict:
    """None for seed or max_seconds means the default in velibcast.constants."""
    seed = C.TRAIN_SEED if seed is None else seed
    max_seconds = C.TRAIN_MAX_SECONDS if max_seconds is None else max_seconds
    torch.set_num_threads(C.TRAIN_TORCH_THREADS)
    cpu0, wall0 = time.process_time(), time.monotonic()
    tc = train_config()
    mapping = station_mapping(grid.station_codes)
    samples = samples_from_grid(grid, mapping)
    parts = time_split(samples, tc["val_fraction"], tc["test_fraction"])
    for name, part in parts.items():
        if len(part) == 0:
            raise ConfigError(f"the {name} part of {start:%Y-%m-%dT%H:%MZ}..{end:%Y-%m-%dT%H:%MZ} has no samples; "
                             "train on a longer span")
    net, config, scaler, fit_info = fit(parts, len(mapping), seed, max_seconds, tc)
    metrics = {
        "mae_test": evaluate.mae_table(net, parts["test"].x, parts["test"].y),
        "mae_val": evaluate.mae_table(net, parts["val"].x, parts["val"].y),
        "mae_test_by_day_type": evaluate.by_day_type(net, parts["test"]),
        "split": {name: _span(part) for name, part in parts.items()},
        "fit": fit_info,
        "train_cpu_seconds": round(time.process_time() - cpu0, 1),
        "train_wall_seconds": round(time.monotonic() - wall0, 1),
    }
    # A CPU-time cut depends on the machine: the epochs actually trained are part of the identity.
    version = package.model_version(start, end, config, dict(tc, epochs_run=fit_info["epochs_run"],
                                                            best_epoch=fit_info["best_epoch"]), seed)
    metadata = {
        "version": version,
        "architecture": config["architecture"],
        "training_data": {"start": _iso(start), "end": _iso(end), "stations": len(mapping),
                          "samples": len(samples), "skips": data_report or {}},
        "seed": seed,
        "train_config": tc,
        "metrics": metrics,
        "torch_version": torch.__version__,
    }
    archive = package.build_archive(net.state_dict(), {
        "config.json": config,
        "scaler.json": scaler,
        "station_mappings.json": {"unknown_station_index": F.UNKNOWN_STATION_INDEX, "station_index": mapping},
        "metadata.json": metadata,
    })
    uri = package.write_model(storage, out_root, version, archive)
    return {"version": version, "model_uri": uri, "metrics": metrics}


def train_model(storage: st.Storage, snapshots_root: str, start: datetime, end: datetime, out_root: str,
                seed: int | None = None, max_seconds: float | None = None) -> dict:
    """Hourly states over [start, end] from the snapshot store, then train_on_grid.
    Returns {version, model_uri, metrics}; the model is <out_root>/models/<version>/model.tar.gz."""
    from velibcast.datasets.report import SkipReport, ValidationPolicy

    start, end = _hour(start), _hour(end)
    report = SkipReport()
    # origins start+23h .. end-3h: the grid spans [start, end], as samples_from_grid expects
    grid = grid_for_samples(storage, snapshots_root, start + (F.HISTORY_LEN - 1) * timedelta(hours=1),
                            end - F.HORIZONS * timedelta(hours=1), report, ValidationPolicy())
    return train_on_grid(grid, storage, out_root, start, end, seed, max_seconds, report.to_dict())


def _hour(t: datetime) -> datetime:
    if t.tzinfo is None:
        raise ConfigError(f"{t.isoformat()} has no time zone; give UTC times, e.g. 2022-05-23T00:00Z")
    return t.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _span(part: Samples) -> dict:
    if len(part) == 0:
        return {"samples": 0}
    return {"samples": len(part), "first_origin": _iso(part.hours[int(part.origin.min())]),
            "last_origin": _iso(part.hours[int(part.origin.max())])}
