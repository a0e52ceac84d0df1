"""Gradient-boosted trees evaluated with NumPy: the `velib_gbm` model family.

Trained with LightGBM (velibcast.training.gbm), shipped as plain JSON (trees.json), so the
SageMaker PyTorch container needs nothing new and nothing is unpickled.

- One ensemble per horizon predicts the change from the last value as a share of capacity:
  zero is persistence, and stations of 12 and 60 docks share one scale.
- Features (`derive`, the one definition training and serving use): occupancy at t, the 23
  earlier occupancies minus the one at t, hour, day_of_week, non_working_day, capacity, lat,
  lon. No station index: an unknown station is served exactly like a known one.
- config["persistence_on_non_working_days"]: set when training saw no non-working day;
  such records then get persistence (weekday dynamics on a holiday lose to it: 8-10 % worse
  at every horizon on Ascension 2022-05-26 when trained on 05-23..05-25).

trees.json: {"horizons": [{"nodes": {feature, threshold, left, right, value}, "roots": [...],
"depth": d}, ...]}. Every node is an array entry; a leaf has threshold +inf and both children
pointing to itself, so `depth` steps of "go left if x[feature] <= threshold" reach every leaf.
"""

import json
import os

import numpy as np

try:
    from . import velib_features as F
    from .velib_errors import ModelLoadError
except ImportError:  # code/ on sys.path, as in the SageMaker container
    import velib_features as F
    from velib_errors import ModelLoadError

TREES = "trees.json"
ARCHITECTURE = "velib_gbm"
DERIVED_FEATURES = (["occupancy_lag0"] + [f"occupancy_lag{F.HISTORY_LEN - 1 - i}_minus_lag0" for i in range(F.HISTORY_LEN - 1)]
                    + ["hour", "day_of_week", F.NON_WORKING, "capacity", "lat", "lon"])
# Rows evaluated together: (rows x trees) index arrays stay a few MB, in cache.
BLOCK_ROWS = 4096

_CAP = F.COL["capacity"]
_NW = F.COL[F.NON_WORKING]


def derive(x):
    """(n, 31) FEATURE_COLUMNS rows -> (n, len(DERIVED_FEATURES)) float64."""
    x = np.asarray(x, dtype=np.float64)
    cap = np.maximum(x[:, _CAP], 1.0)
    occ = x[:, : F.HISTORY_LEN] / cap[:, None]
    last = occ[:, -1:]
    static = x[:, [F.COL["hour"], F.COL["day_of_week"], _NW, _CAP, F.COL["lat"], F.COL["lon"]]]
    return np.concatenate([last, occ[:, :-1] - last, static], axis=1)


class Ensemble:
    """One horizon's trees as flat arrays."""

    def __init__(self, spec):
        nodes = spec["nodes"]
        self.feature = np.asarray(nodes["feature"], dtype=np.int64)
        self.threshold = np.asarray([np.inf if t is None else t for t in nodes["threshold"]], dtype=np.float64)
        self.left = np.asarray(nodes["left"], dtype=np.int64)
        self.right = np.asarray(nodes["right"], dtype=np.int64)
        self.value = np.asarray(nodes["value"], dtype=np.float64)
        self.roots = np.asarray(spec["roots"], dtype=np.int64)
        self.depth = int(spec["depth"])

    def predict(self, z):
        n = len(z)
        idx = np.broadcast_to(self.roots, (n, len(self.roots))).copy()
        rows = np.arange(n)[:, None]
        for _ in range(self.depth):
            go_left = z[rows, self.feature[idx]] <= self.threshold[idx]
            idx = np.where(go_left, self.left[idx], self.right[idx])
        return self.value[idx].sum(axis=1)


class GbmForecaster:
    """Raw FEATURE_COLUMNS rows -> bikes at T+1h..T+3h (n, 3), unrounded."""

    architecture = ARCHITECTURE

    def __init__(self, config, trees):
        if config.get("derived_features") != DERIVED_FEATURES:
            raise ModelLoadError("config.json derived_features differ from this code's; repackage the model")
        self.config = dict(config)
        self.ensembles = [Ensemble(h) for h in trees["horizons"]]
        self.persist_non_working = bool(config.get("persistence_on_non_working_days", False))

    def change(self, x):
        """Predicted change over capacity (n, 3)."""
        x = np.asarray(x, dtype=np.float64)
        out = np.empty((len(x), len(self.ensembles)))
        for i in range(0, len(x), BLOCK_ROWS):
            z = derive(x[i : i + BLOCK_ROWS])
            for h, ens in enumerate(self.ensembles):
                out[i : i + BLOCK_ROWS, h] = ens.predict(z)
        if self.persist_non_working:
            out[x[:, _NW] == 1] = 0.0
        return out

    def predict(self, x):
        x = np.asarray(x, dtype=np.float64)
        cap = np.maximum(x[:, _CAP], 1.0)
        return x[:, F.HISTORY_LEN - 1 : F.HISTORY_LEN] + self.change(x) * cap[:, None]


def load(model_dir, config):
    with open(os.path.join(model_dir, TREES), encoding="utf-8") as f:
        return GbmForecaster(config, json.load(f))
