"""The predictive distribution around a point forecast: the same layer for every model family.

What a family predicts is a point (bikes, unrounded) per horizon. Around it, the residuals
measured on held-out origins after the family's training part are stored as LEVELS quantiles
per horizon and bin of forecast occupancy: a station forecast near empty can only err upwards,
one half full both ways, and errors grow with the horizon. A residual is a share of the room
the forecast leaves on its side: (actual - forecast) / (capacity - forecast) above it, / forecast
below it, in [-1, 1]. Placed around another forecast of the same bin it stays in [0, capacity],
and an outcome that filled (emptied) the station fills (empties) it again: as a share of
capacity, the error of a forecast of 0.5 bike that emptied the station, lent to one of 1.4,
did not empty it, and p_empty and p_full came out far from the frequencies (backtest: predicted
0.34, observed 0.07). At serving time the levels placed around the forecast are a sample of the
outcome: its quantiles are bikes_p10/p50/p90, its share at or below 0.5 bike is p_empty, at or
above capacity - 0.5 is p_full.

distribution.json: {"occupancy_edges": [inner bin edges of forecast / capacity],
"levels": LEVELS, "residuals": [horizon][bin][LEVELS residual quantiles, ascending]}.
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

FILE = "distribution.json"
# Quantile levels k/100, k = 1..99: 0.10, 0.50 and 0.90 are levels themselves, and a probability
# is resolved to about 1 %.
LEVELS = 99
QUANTILE_LEVELS = {"bikes_p10": 9, "bikes_p50": 49, "bikes_p90": 89}  # index into the levels
OCCUPANCY_EDGES = (0.05, 0.15, 0.3, 0.5, 0.7, 0.85, 0.95)
# A cell with fewer held-out residuals takes its bin's, pooled over the horizons: 99 levels need a few
# hundred, and where the forecast sits (near empty, near full) shapes them more than the horizon does.
MIN_CELL = 300
PROBABILITY_DECIMALS = 3


def occupancy_bin(pred, cap):
    """Bin of forecast occupancy, 0..len(OCCUPANCY_EDGES)."""
    return np.searchsorted(np.asarray(OCCUPANCY_EDGES), np.clip(pred / cap, 0.0, 1.0), side="right")


def _room(point, cap, up):
    """The bikes between the forecast and the bound on the side of `up` (True: capacity), at least a tiny
    amount so a forecast at the bound divides by something (its residual there is 0)."""
    return np.maximum(np.where(up, cap - point, point), 1e-9)


def calibrate(pred, actual, cap, horizon):
    """The distribution.json spec from held-out pairs: forecast, actual, capacity and horizon
    (1..MAX_HORIZON), flat arrays of one pair each."""
    pred, actual, cap = (np.asarray(a, dtype=np.float64) for a in (pred, actual, cap))
    horizon = np.asarray(horizon)
    cap = np.maximum(cap, 1.0)
    point = np.clip(pred, 0.0, cap)
    diff = np.clip(actual, 0.0, cap) - point  # bikes beyond capacity (overflow) count as a full station
    r = diff / _room(point, cap, diff >= 0)
    b = occupancy_bin(point, cap)
    q = np.arange(1, LEVELS + 1) / (LEVELS + 1)
    pooled_all = np.quantile(r, q) if len(r) else np.zeros(LEVELS)
    bins = range(len(OCCUPANCY_EDGES) + 1)
    pooled = [np.quantile(r[b == k], q) if (b == k).sum() >= MIN_CELL else pooled_all for k in bins]
    table = []
    for h in range(1, F.MAX_HORIZON + 1):
        cells = [(horizon == h) & (b == k) for k in bins]
        table.append([[round(float(v), 5) for v in (np.quantile(r[c], q) if c.sum() >= MIN_CELL else pooled[k])]
                      for k, c in enumerate(cells)])
    return {"occupancy_edges": list(OCCUPANCY_EDGES), "levels": LEVELS, "residuals": table}


class Distribution:
    """Point forecasts (n, MAX_HORIZON) -> the OUTPUT_QUANTITIES (n, MAX_HORIZON, 6), float64."""

    def __init__(self, spec):
        r = np.asarray(spec["residuals"], dtype=np.float64)
        shape = (F.MAX_HORIZON, len(OCCUPANCY_EDGES) + 1, LEVELS)
        if (r.shape != shape or list(spec["occupancy_edges"]) != list(OCCUPANCY_EDGES)
                or not np.isfinite(r).all() or (np.diff(r, axis=2) < 0).any()):
            raise ModelLoadError(f"{FILE}: not {shape} ascending residual levels on this code's occupancy bins; "
                                 "repackage the model")
        self.residuals = r

    def quantities(self, pred, cap):
        pred = np.asarray(pred, dtype=np.float64)
        cap = np.asarray(cap, dtype=np.float64)[:, None]
        scale = np.maximum(cap, 1.0)  # a 0-dock station is binned as a 1-dock one
        point = np.clip(pred, 0.0, cap)
        cells = self.residuals[np.arange(F.MAX_HORIZON)[None, :], occupancy_bin(point, scale)]  # (n, H, LEVELS)
        p = point[:, :, None]
        outcome = p + cells * _room(p, cap[:, :, None], cells >= 0)
        out = np.empty((*pred.shape, len(F.OUTPUT_QUANTITIES)))
        out[:, :, 0] = served(point, cap)
        for name, k in QUANTILE_LEVELS.items():
            out[:, :, F.OUTPUT_QUANTITIES.index(name)] = served(outcome[:, :, k], cap)
        out[:, :, F.OUTPUT_QUANTITIES.index("p_empty")] = np.round((outcome <= 0.5).mean(axis=2), PROBABILITY_DECIMALS)
        out[:, :, F.OUTPUT_QUANTITIES.index("p_full")] = np.round((outcome >= cap[:, :, None] - 0.5).mean(axis=2),
                                                                  PROBABILITY_DECIMALS)
        return out


def served(bikes, cap):
    """Bikes as served: rounded (half to even), clamped to [0, capacity]."""
    return np.minimum(np.clip(np.round(bikes), 0.0, None), cap)


def load(model_dir):
    with open(os.path.join(model_dir, FILE), encoding="utf-8") as f:
        return Distribution(json.load(f))
