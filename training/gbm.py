"""The `gbm` candidate: LightGBM per horizon, exported to the JSON trees velib_gbm.py evaluates.

Target: the change from the last value over capacity; loss: absolute error weighted by
capacity, which is the MAE in bikes (the reported metric). All samples of the span are
used, non-working days included: the holiday is what teaches the model non-working days.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from velibcast import constants as C
from velibcast.errors import ConfigError
from velibcast.training.samples import Samples
from velibcast.transform_code import velib_features as F
from velibcast.transform_code import velib_gbm


def gbm_params(seed: int) -> dict:
    return {"objective": "l1", "learning_rate": C.GBM_LEARNING_RATE, "num_leaves": C.GBM_NUM_LEAVES,
            "min_data_in_leaf": C.GBM_MIN_DATA_IN_LEAF, "feature_fraction": 0.9, "bagging_fraction": 0.8,
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


def fit_gbm(train: Samples, seed: int, progress: Callable[[str], None] = print,
            rounds: int | None = None) -> tuple[dict, dict, dict]:
    """Returns (config, trees, fit info). One progress line every GBM_PROGRESS_EVERY rounds per horizon."""
    rounds = rounds or C.GBM_ROUNDS
    import lightgbm as lgb  # lazy: lightgbm only when fitting (the shipped trees are read with NumPy)

    if len(train) == 0:
        raise ConfigError("no training sample; train on a longer span")
    z = velib_gbm.derive(train.x)
    cap = np.maximum(train.x[:, F.COL["capacity"]].astype(np.float64), 1.0)
    last = train.x[:, F.HISTORY_LEN - 1].astype(np.float64)
    params = gbm_params(seed)
    t0 = time.monotonic()
    horizons, history = [], []
    for h in range(F.HORIZONS):
        ds = lgb.Dataset(z, (train.y[:, h] - last) / cap, weight=cap, feature_name=velib_gbm.DERIVED_FEATURES,
                         free_raw_data=True)
        log: dict[int, float] = {}

        def report(env, h=h, log=log):
            k = env.iteration + 1
            if k % C.GBM_PROGRESS_EVERY == 0 or k == rounds:
                l1 = env.evaluation_result_list[0][2]
                progress(f"gbm T+{h + 1}h round {k}/{rounds}: train L1 {l1:.5f} (change/capacity, "
                         f"capacity-weighted), {time.monotonic() - t0:.1f} s elapsed")
                log[k] = round(float(l1), 6)

        booster = lgb.train(params, ds, num_boost_round=rounds, valid_sets=[ds], valid_names=["train"],
                            callbacks=[report])
        horizons.append(trees_spec(booster))
        history.append(log)
    non_working_seen = bool((train.x[:, F.COL[F.NON_WORKING]] == 1).any())
    config = {"architecture": velib_gbm.ARCHITECTURE, "family": "gbm", "feature_columns": F.FEATURE_COLUMNS,
              "feature_contract": F.FEATURE_CONTRACT, "output_columns": F.OUTPUT_COLUMNS,
              "derived_features": velib_gbm.DERIVED_FEATURES, "horizons": F.HORIZONS,
              "persistence_on_non_working_days": not non_working_seen}
    info = {"rounds": rounds, "params": params, "train_l1_by_round": history,
            "samples": len(train), "non_working_samples": int((train.x[:, F.COL[F.NON_WORKING]] == 1).sum()),
            "seconds": round(time.monotonic() - t0, 1)}
    return config, {"horizons": horizons}, info
