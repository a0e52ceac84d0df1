"""Proper scores of a predictive distribution: one definition for backtests and forward scoring.

- pinball loss of a quantile forecast q at level tau: mean of max(tau (y - q), (tau - 1) (y - q));
  its minimum in expectation is the true quantile, so a lower loss is a better quantile;
- interval coverage: the share of outcomes inside [lo, hi] (an 80 % interval should hold ~80 %);
- Brier score of a probability p of an event: mean of (p - event)^2; its skill against a
  reference forecast is 1 - Brier / Brier_reference (> 0: better than the reference). The
  references: persistence (1 if the event holds at the origin, else 0) and the station's
  historical frequency of the event for the target's local hour and day type (`event_frequency`;
  a backtest takes it over the training days, a forward score over the CLIMATOLOGY_DAYS before
  the forecast's first origin);
- reliability: outcomes grouped by forecast probability, the observed frequency of each bin
  beside its mean forecast (a reliable forecast lies on the diagonal).

Events: a station is empty when it holds 0 bikes, full when its bikes reach its capacity.
"""

from __future__ import annotations

import numpy as np

QUANTILES = {"bikes_p10": 0.1, "bikes_p50": 0.5, "bikes_p90": 0.9}
RELIABILITY_BINS = 10
# Day-ahead horizons are judged in buckets: the next hours (a nowcast's span), the morning,
# the day, and the evening and night, where a station's daily profile matters most.
HORIZON_BUCKETS = ((1, 3), (4, 8), (9, 16), (17, 24))
# The history a forward score's frequency reference is taken over: two weeks hold both day types
# at least four times (two weekends).
CLIMATOLOGY_DAYS = 14
# Probabilities are stored as float32: 0.7 reads back as 0.69999999. Rounding before binning
# keeps a forecast on its bin's lower edge in that bin.
_BIN_DECIMALS = 6


def pinball_losses(y: np.ndarray, q: np.ndarray, tau: float) -> np.ndarray:
    """The pinball loss of each outcome (any shape); its mean is `pinball`."""
    d = np.asarray(y, np.float64) - np.asarray(q, np.float64)
    return np.maximum(tau * d, (tau - 1) * d)


def pinball(y: np.ndarray, q: np.ndarray, tau: float) -> float:
    losses = pinball_losses(y, q, tau)
    return float(np.mean(losses)) if len(losses) else float("nan")


def coverage(y: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> float:
    y = np.asarray(y, np.float64)
    return float(np.mean((y >= lo) & (y <= hi))) if len(y) else float("nan")


def brier(p: np.ndarray, event: np.ndarray) -> float:
    p = np.asarray(p, np.float64)
    return float(np.mean((p - np.asarray(event, np.float64)) ** 2)) if len(p) else float("nan")


def skill(score: float, reference: float) -> float | None:
    """1 - score / reference; None when the reference is perfect (nothing to beat) or unknown."""
    if not np.isfinite(score) or not np.isfinite(reference) or reference <= 0:
        return None
    return 1.0 - score / reference


def event_frequency(event: np.ndarray, known: np.ndarray, non_working: np.ndarray,
                    local_hour: np.ndarray) -> np.ndarray:
    """(stations, 2, 24): per station, day type (0 working, 1 non-working) and local hour, the share
    of the known hours of `event` (stations x hours) on which it held. A station with no known hour
    there takes the share over every station's known hours; NaN where no station has one."""
    known = np.asarray(known, bool)
    hit = np.asarray(event, bool) & known
    cell = np.asarray(non_working, np.int64) * 24 + np.asarray(local_hour, np.int64)  # one per hour
    hits = np.zeros((hit.shape[0], 48))
    seen = np.zeros((hit.shape[0], 48))
    for c in np.unique(cell):
        hits[:, c] = hit[:, cell == c].sum(axis=1)
        seen[:, c] = known[:, cell == c].sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        network = hits.sum(axis=0) / seen.sum(axis=0)
        share = np.where(seen > 0, hits / np.maximum(seen, 1), network[None, :])
    return share.reshape(-1, 2, 24)


def empty(bikes: np.ndarray) -> np.ndarray:
    return np.asarray(bikes, np.float64) <= 0


def full(bikes: np.ndarray, capacity: np.ndarray) -> np.ndarray:
    return np.asarray(bikes, np.float64) >= np.asarray(capacity, np.float64)


def reliability(p: np.ndarray, event: np.ndarray, bins: int = RELIABILITY_BINS) -> list[dict]:
    """One dict per non-empty bin of [0, 1]: its bounds, forecasts in it, mean forecast, observed frequency."""
    p = np.asarray(p, np.float64)
    event = np.asarray(event, np.float64)
    which = np.minimum(np.floor(np.round(p * bins, _BIN_DECIMALS)).astype(np.int64), bins - 1)
    out = []
    for b in range(bins):
        m = which == b
        if m.any():
            out.append({"lo": b / bins, "hi": (b + 1) / bins, "n": int(m.sum()),
                        "mean_forecast": float(p[m].mean()), "observed": float(event[m].mean())})
    return out


def bucket_of(horizon: int) -> tuple[int, int]:
    return next(b for b in HORIZON_BUCKETS if b[0] <= horizon <= b[1])
