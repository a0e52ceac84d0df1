"""The `gbm` candidate: one LightGBM ensemble over every horizon, exported to the JSON trees
velib_gbm.py evaluates, with the station profiles of its training samples.

Target: the change from the last value over capacity; loss: absolute error weighted by
capacity, which is the MAE in bikes (the reported metric). Samples of every day are used,
non-working days included: they are what teaches the model non-working days.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from velibcast import constants as C
from velibcast.errors import ConfigError
from velibcast.training.samples import Samples
from velibcast.transform_code import velib_features as F
from velibcast.transform_code import velib_gbm, velib_profile


def gbm_params(seed: int) -> dict:
    return {"objective": "l1", "learning_rate": C.GBM_LEARNING_RATE, "num_leaves": C.GBM_NUM_LEAVES,
            "max_depth": C.GBM_MAX_DEPTH, "min_data_in_leaf": C.GBM_MIN_DATA_IN_LEAF, "feature_fraction": 0.9, "bagging_fraction": 0.8,
            "bagging_freq": 1, "num_threads": C.GBM_THREADS, "seed": seed, "deterministic": True,
            "force_row_wise": True, "verbose": -1}


def trees_spec(booster) -> dict:
    """LightGBM's dump_model() -> flat arrays (see velib_gbm). Only numerical `<=` splits occur here."""
    feature: list[int] = []
    threshold: list[float | None] = []
    left: list[int] = []
    right: list[int] = []
    value: list[float] = []
    roots: list[int] = []
    depth = 0

    def add(node, d):
        nonlocal depth
        i = len(feature)
        feature.append(0)
        threshold.append(None)
        left.append(i)
        right.append(i)
        value.append(0.0)
        if "split_feature" not in node:  # a leaf (a tree of one leaf has no leaf_index)
            value[i] = float(node["leaf_value"])
            depth = max(depth, d)
            return i
        if node.get("decision_type") != "<=":
            raise ValueError(f"split {node.get('decision_type')!r} is not supported by velib_gbm")
        feature[i] = int(node["split_feature"])
        threshold[i] = float(node["threshold"])
        left[i] = add(node["left_child"], d + 1)
        right[i] = add(node["right_child"], d + 1)
        return i

    for tree in booster.dump_model()["tree_info"]:
        roots.append(add(tree["tree_structure"], 0))
    return {"nodes": {"feature": feature, "threshold": threshold, "left": left, "right": right, "value": value},
            "roots": roots, "depth": depth}


def gbm_config(persistence_on_non_working_days: bool) -> dict:
    """config.json of a gbm model, but n_stations (the station mapping's)."""
    return {"architecture": velib_gbm.ARCHITECTURE, "family": "gbm", "feature_columns": F.FEATURE_COLUMNS,
            "feature_contract": F.FEATURE_CONTRACT, "output_columns": F.OUTPUT_COLUMNS,
            "derived_features": velib_gbm.DERIVED_FEATURES, "max_horizon": F.MAX_HORIZON,
            "persistence_on_non_working_days": persistence_on_non_working_days}


def training_pairs(s: Samples, first: int, last: int, max_rows: int,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(sample row, horizon) of the observed targets at horizons first..last, at most max_rows drawn
    uniformly: the 24 horizons of ~500,000 origins are 12 M rows, and neighbouring hours of one
    station repeat each other."""
    rows, cols = np.nonzero(np.isfinite(s.y[:, first - 1 : last]))
    if len(rows) > max_rows:
        pick = np.sort(rng.choice(len(rows), max_rows, replace=False))
        rows, cols = rows[pick], cols[pick]
    return rows, cols + first


def own_value_left_out(train: Samples, rows: np.ndarray, horizon: np.ndarray,
                       tables: tuple[np.ndarray, np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """velib_gbm.profile_features of training rows, each profile without the value it would be learnt
    from: a target hour that is also a training origin is in its own profile cell, and with a few
    days of data the profile at the target would nearly be the target (in-sample MAE 0.5 bike at
    T+1h against 2.6 out of sample, measured). Serving meets days the profile never saw."""
    sums, counts, network = tables
    x = train.x[rows].astype(np.float64)
    si = F.COL["station_index"]
    state = np.full((len(sums), len(train.hours) + F.MAX_HORIZON + 1), np.nan)
    state[train.x[:, si].astype(np.int64), train.origin] = velib_profile.occupancy_now(train.x.astype(np.float64))
    station = x[:, si].astype(np.int64)
    known = station != F.UNKNOWN_STATION_INDEX  # served the network's profile, as at serving time

    def left_out(day, hour, own):
        cell = day.astype(np.int64) * velib_profile.HOURS + hour.astype(np.int64)
        s, c = np.where(known, sums[station, cell], 0.0), np.where(known, counts[station, cell], 0.0)
        drop = np.isfinite(own) & (c >= 1)
        return velib_profile.shrunk(np.where(drop, s - own, s), np.where(drop, c - 1, c), network[cell])

    origin = train.origin[rows]
    t_hour, t_day = velib_gbm.target_calendar(x, horizon)
    return (left_out(t_day, t_hour, state[station, origin + horizon]),
            left_out(x[:, F.COL[F.NON_WORKING]], x[:, F.COL["hour"]], state[station, origin]))


def fit_gbm(train: Samples, seed: int, progress: Callable[[str], None] = print,
            rounds: int | None = None, max_rows: int | None = None) -> tuple[dict, dict, dict]:
    """Returns (config, JSON artifacts: trees and profiles, fit info). One ensemble per group of
    GBM_HORIZON_GROUPS, each on at most `max_rows` (None: GBM_MAX_ROWS) drawn rows; one progress
    line every GBM_PROGRESS_EVERY rounds."""
    rounds = rounds or C.GBM_ROUNDS
    max_rows = max_rows or C.GBM_MAX_ROWS
    import lightgbm as lgb  # lazy: lightgbm only when fitting (the shipped trees are read with NumPy)

    if len(train) == 0:
        raise ConfigError("no training sample; train on a longer span")
    t0 = time.monotonic()
    tables = velib_profile.tables(train.x)
    rng = np.random.default_rng(seed)
    params = gbm_params(seed)
    ensembles: list[dict] = []
    log: dict[str, dict[int, float]] = {}
    n_rows = 0
    for first, last in C.GBM_HORIZON_GROUPS:
        rows, horizon = training_pairs(train, first, last, max_rows, rng)
        x = train.x[rows].astype(np.float64)
        cap = np.maximum(x[:, F.COL["capacity"]], 1.0)
        change = (train.y[rows, horizon - 1] - x[:, F.HISTORY_LEN - 1]) / cap
        z = velib_gbm.derive(x, horizon, *own_value_left_out(train, rows, horizon, tables))
        ds = lgb.Dataset(z, change, weight=cap,
                         feature_name=velib_gbm.DERIVED_FEATURES, free_raw_data=True)
        name = f"T+{first}h" if first == last else f"T+{first}..{last}h"
        progress(f"gbm {name}: {len(rows)} (origin, horizon) rows of {len(train)} origins, "
                 f"{time.monotonic() - t0:.1f} s elapsed")
        log[name] = {}

        def report(env, name=name):
            k = env.iteration + 1
            if k % C.GBM_PROGRESS_EVERY == 0 or k == rounds:
                l1 = env.evaluation_result_list[0][2]
                progress(f"gbm {name} round {k}/{rounds}: train L1 {l1:.5f} (change/capacity, capacity-weighted), "
                         f"{time.monotonic() - t0:.1f} s elapsed")
                log[name][k] = round(float(l1), 6)

        booster = lgb.train(params, ds, num_boost_round=rounds, valid_sets=[ds], valid_names=["train"],
                            callbacks=[report])
        ensembles.append(dict(trees_spec(booster), horizons=[first, last]))
        n_rows += len(rows)
    non_working = train.x[:, F.COL[F.NON_WORKING]] == 1
    config = gbm_config(not bool(non_working.any()))
    info = {"rounds": rounds, "params": params, "train_l1_by_round": log, "samples": len(train),
            "rows": n_rows, "non_working_samples": int(non_working.sum()),
            "seconds": round(time.monotonic() - t0, 1)}
    return config, {velib_gbm.TREES: {"ensembles": ensembles}, velib_profile.FILE: velib_profile.build(train.x),
                    velib_profile.EVENTS_FILE: velib_profile.build_events(train.x)}, info


def forecaster(config: dict, artifacts: dict, n_stations: int) -> velib_gbm.GbmForecaster:
    """The served forecaster of fit_gbm's config and artifacts, as model_fn loads it."""
    return velib_gbm.GbmForecaster(
        dict(config, n_stations=n_stations), artifacts[velib_gbm.TREES],
        velib_profile.Profiles(artifacts[velib_profile.FILE], n_stations),
        {name: velib_profile.Profiles(spec, n_stations) for name, spec in artifacts[velib_profile.EVENTS_FILE].items()})
