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

Counts are whole numbers, and a rounded level includes its own value: the served 10th and 90th
percentiles of the levels held the outcome between them more than 8 times in 10 (86 % at 1-3 h in
the backtest, the narrow short-horizon intervals most). So calibration also picks, per horizon,
the level whose served value has about 1 outcome in 10 below it (bikes_p10) and above it
(bikes_p90), on the same held-out pairs; bikes_p50 stays the middle level.

p_empty and p_full read off the levels know the forecast's occupancy bin, not the station: far
ahead, a station that is empty most mornings is a better guide than its bin. Where the family
gives the station's climatology of the events at the target (velib_profile.EVENTS), each
probability is a blend, per horizon, of the levels' and the climatology's, weighted to minimise
the Brier score on the held-out pairs ("event_weights": the levels' weight, in [0, 1]).

A row the station's profile serves (fallback "profile": its state is too old to forecast from) has
levels of its own: the residuals of the profile's forecast on the same held-out pairs, per occupancy
bin, pooled over the horizons (the profile does not read the state, so its errors do not grow with
the horizon), with their own calibrated p10 and p90 levels. The model's residuals, placed around the
profile, were far too narrow where the model knows the state best: served as stale, held-out windows
fell inside them 45 % of the time at T+1 h (training/README.md).

distribution.json: {"occupancy_edges": [inner bin edges of forecast / capacity],
"levels": LEVELS, "residuals": [horizon][bin][LEVELS residual quantiles, ascending],
"quantile_levels": {"bikes_p10" | "bikes_p50" | "bikes_p90": [horizon] index into the levels},
"event_weights": {"p_empty" | "p_full": [horizon] weight of the levels' probability},
"profile": {"residuals": [bin][LEVELS], "quantile_levels": {"bikes_p10" | ...: index}}}.
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
_Q = np.arange(1, LEVELS + 1) / (LEVELS + 1)  # the levels' probabilities
QUANTILE_LEVELS = {"bikes_p10": 9, "bikes_p50": 49, "bikes_p90": 89}  # index into the levels, before calibration
TAIL = 0.1  # the share of outcomes below bikes_p10, and above bikes_p90
OCCUPANCY_EDGES = (0.05, 0.15, 0.3, 0.5, 0.7, 0.85, 0.95)
# A cell with fewer held-out residuals takes its bin's, pooled over the horizons: 99 levels need a few
# hundred, and where the forecast sits (near empty, near full) shapes them more than the horizon does.
MIN_CELL = 300
PROBABILITY_DECIMALS = 3
EVENTS = F.PROBABILITIES  # p_empty, p_full: the events whose climatology a family may give


def occupancy_bin(pred, cap):
    """Bin of forecast occupancy, 0..len(OCCUPANCY_EDGES)."""
    return np.searchsorted(np.asarray(OCCUPANCY_EDGES), np.clip(pred / cap, 0.0, 1.0), side="right")


def _room(point, cap, up):
    """The bikes between the forecast and the bound on the side of `up` (True: capacity), at least a tiny
    amount so a forecast at the bound divides by something (its residual there is 0)."""
    return np.maximum(np.where(up, cap - point, point), 1e-9)


def calibrate(pred, actual, cap, horizon, profile, climatology=None):
    """The distribution.json spec from held-out pairs: forecast, actual, capacity and horizon
    (1..MAX_HORIZON), flat arrays of one pair each; `profile`, the station profile's forecast of each
    pair; and the climatology of EVENTS at each pair's target, (pairs, 2), when the family has one."""
    pred, actual, cap, profile = (np.asarray(a, dtype=np.float64) for a in (pred, actual, cap, profile))
    horizon = np.asarray(horizon)
    happened = np.column_stack([actual <= 0, actual >= cap]).astype(np.float64)  # a 0-dock station is both
    cap = np.maximum(cap, 1.0)
    r, b, point = _residuals(pred, actual, cap)
    pooled = _by_bin(r, b)
    table = []
    for h in range(1, F.MAX_HORIZON + 1):
        cells = [(horizon == h) & (b == k) for k in range(len(pooled))]
        table.append([[round(float(v), 5) for v in (np.quantile(r[c], _Q) if c.sum() >= MIN_CELL else pooled[k])]
                      for k, c in enumerate(cells)])
    levels = {name: [k] * F.MAX_HORIZON for name, k in QUANTILE_LEVELS.items()}
    weights = {name: [1.0] * F.MAX_HORIZON for name in EVENTS}
    for h in range(1, F.MAX_HORIZON + 1):
        at = horizon == h
        if at.sum() < MIN_CELL:
            continue
        outcome = _outcomes(np.asarray(table[h - 1])[b[at]], point[at], cap[at])
        if climatology is not None:
            own = _event_probabilities(outcome, cap[at])
            for k, name in enumerate(EVENTS):
                weights[name][h - 1] = _brier_weight(own[k], np.asarray(climatology)[at, k], happened[at, k])
        for name, k in _tail_levels(outcome, actual[at], cap[at]).items():
            levels[name][h - 1] = k
    r, b, point = _residuals(profile, actual, cap)
    profile_table = [[round(float(v), 5) for v in cell] for cell in _by_bin(r, b)]
    profile_levels = _tail_levels(_outcomes(np.asarray(profile_table)[b], point, cap), actual, cap)
    return {"occupancy_edges": list(OCCUPANCY_EDGES), "levels": LEVELS, "residuals": table,
            "quantile_levels": levels, "event_weights": weights,
            "profile": {"residuals": profile_table, "quantile_levels": profile_levels}}


def _residuals(pred, actual, cap):
    """(residual as a share of the room the forecast leaves on its side, the forecast's occupancy bin, the
    forecast clipped to [0, cap]) of each pair; cap at least 1."""
    point = np.clip(pred, 0.0, cap)
    diff = np.clip(actual, 0.0, cap) - point  # bikes beyond capacity (overflow) count as a full station
    return diff / _room(point, cap, diff >= 0), occupancy_bin(point, cap), point


def _by_bin(r, b):
    """The LEVELS quantiles of residuals `r` in each occupancy bin; a bin with fewer than MIN_CELL takes all of them."""
    pooled_all = np.quantile(r, _Q) if len(r) else np.zeros(LEVELS)
    return [np.quantile(r[b == k], _Q) if (b == k).sum() >= MIN_CELL else pooled_all
            for k in range(len(OCCUPANCY_EDGES) + 1)]


def _tail_levels(outcome, actual, cap):
    """The levels served as bikes_p10, p50 and p90 of outcomes (pairs, LEVELS): those whose served value has
    the share TAIL of `actual` below it (p10) and above it (p90); p50 the middle level."""
    served_levels = served(outcome, cap[:, None])
    actual = np.clip(actual, 0.0, cap)[:, None]
    below = (actual < served_levels).mean(axis=0)
    above = (actual > served_levels).mean(axis=0)
    middle = QUANTILE_LEVELS["bikes_p50"]
    return {"bikes_p10": int(np.argmin(np.abs(below[: middle + 1] - TAIL))), "bikes_p50": middle,
            "bikes_p90": middle + int(np.argmin(np.abs(above[middle:] - TAIL)))}


def _brier_weight(own, climatology, happened):
    """The weight w in [0, 1] of `own` in w * own + (1 - w) * climatology with the least Brier score."""
    d = own - climatology
    den = float((d * d).sum())
    return 1.0 if den == 0 else round(float(np.clip((d * (happened - climatology)).sum() / den, 0.0, 1.0)), 4)


def _event_probabilities(outcome, cap):
    """(p_empty, p_full) of outcomes (..., LEVELS) placed around forecasts: the share of levels at or
    below 0.5 bike, at or above capacity - 0.5 (cap broadcast against outcome's leading axes)."""
    return (outcome <= 0.5).mean(axis=-1), (outcome >= cap[..., None] - 0.5).mean(axis=-1)


def _outcomes(cells, point, cap):
    """The outcomes the residual levels `cells` (..., LEVELS) place around forecasts `point` of stations of
    capacity `cap` (both broadcast against cells' leading axes)."""
    p = point[..., None]
    return p + cells * _room(p, cap[..., None], cells >= 0)


class Distribution:
    """Point forecasts (n, MAX_HORIZON) and what served them -> the OUTPUT_QUANTITIES
    (n, MAX_HORIZON, len(OUTPUT_QUANTITIES)), float64."""

    def __init__(self, spec):
        self.residuals = _ascending_levels(spec.get("residuals"), (F.MAX_HORIZON, len(OCCUPANCY_EDGES) + 1, LEVELS),
                                           "residual levels")
        if list(spec.get("occupancy_edges") or []) != list(OCCUPANCY_EDGES):
            raise ModelLoadError(f"{FILE}: its occupancy bins are not this code's; repackage the model")
        self.levels = _picked_levels(spec.get("quantile_levels"), (F.MAX_HORIZON,), "quantile_levels")
        w = np.asarray([(spec.get("event_weights") or {}).get(name, [np.nan]) for name in EVENTS], dtype=np.float64)
        if w.shape != (len(EVENTS), F.MAX_HORIZON) or not ((w >= 0) & (w <= 1)).all():
            raise ModelLoadError(f"{FILE}: event_weights are not {len(EVENTS)} x {F.MAX_HORIZON} weights in [0, 1]; "
                                 "repackage the model")
        self.event_weights = w
        profile = spec.get("profile")
        if not isinstance(profile, dict):
            raise ModelLoadError(f"{FILE}: no levels of the profile fallback's own (the model was trained before "
                                 "they were calibrated); retrain it: velibcast train")
        self.profile_residuals = _ascending_levels(profile.get("residuals"), (len(OCCUPANCY_EDGES) + 1, LEVELS),
                                                   "profile residual levels")
        self.profile_levels = _picked_levels(profile.get("quantile_levels"), (), "profile quantile_levels")

    def quantities(self, pred, cap, fallback=None, climatology=None):
        """fallback: (n, MAX_HORIZON) velib_features.FALLBACKS codes of what made each forecast, passed
        through; None when the family made them all. climatology: (n, MAX_HORIZON, 2) the station's
        frequency of EVENTS at each target, blended in by event_weights; None when the family has none."""
        pred = np.asarray(pred, dtype=np.float64)
        cap = np.asarray(cap, dtype=np.float64)[:, None]
        scale = np.maximum(cap, 1.0)  # a 0-dock station is binned as a 1-dock one
        point = np.clip(pred, 0.0, cap)
        bins = occupancy_bin(point, scale)
        cells = self.residuals[np.arange(F.MAX_HORIZON)[None, :], bins]  # (n, H, LEVELS)
        levels = {name: np.broadcast_to(k, point.shape) for name, k in self.levels.items()}
        if fallback is not None:
            profile = np.asarray(fallback) == F.PROFILE
            if profile.any():
                # in place, on the profile's cells only: `cells` is a gathered copy, and a block
                # holds few stale rows (a full-size where() would gather and allocate it twice more)
                cells[profile] = self.profile_residuals[bins[profile]]
                levels = {name: np.where(profile, self.profile_levels[name], k) for name, k in levels.items()}
        outcome = _outcomes(cells, point, np.broadcast_to(cap, point.shape))
        out = np.empty((*pred.shape, len(F.OUTPUT_QUANTITIES)))
        out[:, :, 0] = served(point, cap)
        for name, k in levels.items():
            level = np.take_along_axis(outcome, k[..., None], axis=2)[..., 0]
            out[:, :, F.OUTPUT_QUANTITIES.index(name)] = served(level, cap)
        own = _event_probabilities(outcome, np.broadcast_to(cap, point.shape))
        for k, name in enumerate(EVENTS):
            p = own[k] if climatology is None else \
                self.event_weights[k] * own[k] + (1 - self.event_weights[k]) * climatology[:, :, k]
            if climatology is not None and fallback is not None:
                # a forecast that is the station's profile knows no more of the events than their climatology
                p = np.where(np.asarray(fallback) == F.PROFILE, climatology[:, :, k], p)
            out[:, :, F.OUTPUT_QUANTITIES.index(name)] = np.round(np.clip(p, 0.0, 1.0), PROBABILITY_DECIMALS)
        out[:, :, F.OUTPUT_QUANTITIES.index("fallback")] = F.MODEL if fallback is None else fallback
        return out


def _ascending_levels(value, shape, what):
    """A spec's residual levels as an array of `shape`, finite and ascending along the levels, or ModelLoadError."""
    try:
        r = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        r = None
    if r is None or r.shape != shape or not np.isfinite(r).all() or (np.diff(r, axis=-1) < 0).any():
        raise ModelLoadError(f"{FILE}: {what} are not {shape} ascending residual levels; repackage the model")
    return r


def _picked_levels(value, shape, what):
    """A spec's {bikes_p10, bikes_p50, bikes_p90: index into the levels (of `shape`)}, ordered, or ModelLoadError."""
    try:
        k = np.array([value[name] for name in QUANTILE_LEVELS], dtype=np.int64)
    except (KeyError, TypeError, ValueError):
        k = None
    if k is None or k.shape != (len(QUANTILE_LEVELS), *shape) or (k < 0).any() or (k >= LEVELS).any() \
            or (np.diff(k, axis=0) < 0).any():
        raise ModelLoadError(f"{FILE}: {what} are not {len(QUANTILE_LEVELS)} ordered indices into the {LEVELS} "
                             f"levels{' per horizon' if shape else ''}; repackage the model")
    return dict(zip(QUANTILE_LEVELS, k))


def served(bikes, cap):
    """Bikes as served: rounded (half to even), clamped to [0, capacity]."""
    return np.minimum(np.clip(np.round(bikes), 0.0, None), cap)


def load(model_dir):
    with open(os.path.join(model_dir, FILE), encoding="utf-8") as f:
        return Distribution(json.load(f))
