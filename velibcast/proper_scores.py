"""Proper scores of a predictive distribution: one definition for backtests and forward scoring.

- pinball loss of a quantile forecast q at level tau: mean of max(tau (y - q), (tau - 1) (y - q));
  its minimum in expectation is the true quantile, so a lower loss is a better quantile;
- interval coverage: the share of outcomes inside [lo, hi] (an 80 % interval should hold ~80 %);
- Brier score of a probability p of an event: mean of (p - event)^2; its skill against a
  reference forecast is 1 - Brier / Brier_reference (> 0: better than the reference). The
  references: persistence (1 if the event holds at the origin, else 0) and the station's
  historical frequency of the event for the target's local hour and day type (`event_frequency`,
  the one rule of both: a backtest takes it over its training rows, a forward score over the hourly
  states of the CLIMATOLOGY_DAYS before the forecast's first origin);
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
# A station's frequency of an event at a day type and hour is drawn towards the network's by this many
# pseudo-observations: a station seen empty on one Sunday of one does not empty every Sunday. A reference
# that overreacts to a few days is easy to beat; the model's own climatology (transform_code/velib_profile)
# is drawn alike.
FREQUENCY_PRIOR = 3.0
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


def event_frequency(station: np.ndarray, non_working: np.ndarray, local_hour: np.ndarray, event: np.ndarray,
                    n_stations: int) -> np.ndarray:
    """(n_stations, 2, 24): per station, day type (0 working, 1 non-working) and local hour, how often the
    event held. One observation per station and hour: its `station` (0 .. n_stations - 1), `non_working`,
    `local_hour` and whether `event` held. The station's share of its observations there is drawn
    towards the network's by FREQUENCY_PRIOR pseudo-observations (a station never seen there takes the
    network's). The network's: the share over every station's observations at that day type and hour,
    else at that hour on either day type (a history of working days still knows the hour); NaN where the
    hour was never observed."""
    cell = np.asarray(non_working, np.int64) * 24 + np.asarray(local_hour, np.int64)
    at = np.asarray(station, np.int64) * 48 + cell
    hits = np.bincount(at, np.asarray(event, np.float64), n_stations * 48).reshape(n_stations, 48)
    seen = np.bincount(at, minlength=n_stations * 48).reshape(n_stations, 48)
    network_hits, network_seen = hits.sum(axis=0), seen.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        by_hour = network_hits.reshape(2, 24).sum(axis=0) / network_seen.reshape(2, 24).sum(axis=0)
        network = np.where(network_seen > 0, network_hits / network_seen, np.tile(by_hour, 2))
    share = (hits + FREQUENCY_PRIOR * network) / (seen + FREQUENCY_PRIOR)
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
