"""Scores of a forecaster's predictive distribution per horizon, against the simple alternatives.

Point forecasts are scored as served (rounded, clamped: velib_distribution.served), by MAE
against three baselines:
- persistence: the count stays as it is at t;
- same_day_type: the count at the target's hour on the latest earlier day of the target's day
  type (working / non-working), at most a week back, read from the states the samples hold
  (all at or before the origin); persistence where that state is unknown;
- profile: the station's mean occupancy at the target's hour and day type over the training
  days (velib_profile), times capacity.
The distribution is scored by pinball loss per quantile, the share of outcomes inside
[p10, p90], and the Brier score of p_empty and p_full against two references: the station's
historical frequency for that hour and day type over the training rows (proper_scores.event_frequency,
the rule forward scoring takes over the hourly states) and persistence (1 if empty, or full, now).
Every score is kept per horizon with its count, so days and horizon buckets are averaged by
outcomes, not by rows of a table.
"""

from __future__ import annotations

import json
import tempfile
from datetime import date, timedelta
from pathlib import Path

import numpy as np

from velibcast import proper_scores as ps
from velibcast.datasets.report import SkipReport
from velibcast.errors import ConfigError
from velibcast.timeutil import PARIS, iso_minute
from velibcast.training.package import extract
from velibcast.training.registry import in_training_span, training_span
from velibcast.training.samples import Samples, stream_samples
from velibcast.transform_code import inference, velib_gbm, velib_profile
from velibcast.transform_code import velib_features as F
from velibcast.transform_code.velib_distribution import served

_CAP = F.COL["capacity"]
H = F.MAX_HORIZON
WORKING, NON_WORKING = "working", "non_working"
BASELINES = ("persistence", "same_day_type", "profile")
QUANTILES = ps.QUANTILES
EVENTS = ("p_empty", "p_full")
RELIABILITY_BINS = ps.RELIABILITY_BINS
_Q = {name: F.OUTPUT_QUANTITIES.index(name) for name in F.OUTPUT_QUANTITIES}


def day_type(d: date) -> str:
    return NON_WORKING if F.is_non_working_day(d) else WORKING


def capacity(x: np.ndarray) -> np.ndarray:
    return np.maximum(np.asarray(x[:, _CAP], dtype=np.float64), 1.0)


def persistence(x: np.ndarray) -> np.ndarray:
    return np.repeat(np.asarray(x[:, F.HISTORY_LEN - 1 : F.HISTORY_LEN], dtype=np.float64), H, axis=1)


def same_day_type(s: Samples) -> np.ndarray:
    """(n, H) the same_day_type baseline for every sample of `s` (see the module docstring)."""
    n_hours = len(s.hours)
    if not len(s):
        return np.empty((0, H))
    state = np.full((int(s.station.max()) + 1, n_hours), np.nan)
    state[s.station, s.origin] = s.x[:, F.HISTORY_LEN - 1]
    kind = np.array([F.is_non_working_day(h.astimezone(PARIS).date()) for h in s.hours])
    target = s.origin[:, None] + np.arange(1, H + 1)[None, :]
    kind_t = kind[np.minimum(target, n_hours - 1)]
    out = persistence(s.x)
    found = np.zeros(target.shape, bool)
    for k in range(1, 8):
        past = target - 24 * k
        ok = ~found & (past >= 0) & (kind[np.maximum(past, 0)] == kind_t)
        value = state[s.station[:, None], np.maximum(past, 0)]
        out = np.where(ok & np.isfinite(value), value, out)
        found |= ok
    return out


def target_profile(profiles: velib_profile.Profiles, x: np.ndarray) -> np.ndarray:
    """(n, H) a profile table at each target's local hour and day type."""
    x = np.asarray(x, dtype=np.float64)
    horizon = np.arange(1, H + 1)
    out = np.empty((len(x), H))
    for h in horizon:
        hour, day = velib_gbm.target_calendar(x, h)
        out[:, h - 1] = profiles.lookup(x[:, F.COL["station_index"]], day, hour)
    return out


def event_frequencies(train_x: np.ndarray, n_stations: int) -> dict[str, np.ndarray]:
    """{"p_empty", "p_full"}: (n_stations + 1, 2, 24) tables by station_index (0: the model's unknown
    station), day type and local hour of the events' frequencies at the training rows' origins
    (proper_scores.event_frequency, the rule a forward score takes over the hourly states)."""
    train_x = np.asarray(train_x, dtype=np.float64)
    station = train_x[:, F.COL["station_index"]]
    non_working, hour = train_x[:, F.COL[F.NON_WORKING]], train_x[:, F.COL["hour"]]
    now = train_x[:, F.HISTORY_LEN - 1]
    return {"p_empty": ps.event_frequency(station, non_working, hour, ps.empty(now), n_stations + 1),
            "p_full": ps.event_frequency(station, non_working, hour, ps.full(now, train_x[:, _CAP]), n_stations + 1)}


def target_frequency(table: np.ndarray, x: np.ndarray) -> np.ndarray:
    """(n, H) an event_frequencies table at each row's station and each target's local hour and day type."""
    x = np.asarray(x, dtype=np.float64)
    station = x[:, F.COL["station_index"]].astype(np.int64)
    out = np.empty((len(x), H))
    for h in range(1, H + 1):
        hour, day = velib_gbm.target_calendar(x, h)
        out[:, h - 1] = table[station, day.astype(np.int64), hour.astype(np.int64)]
    return out


def references(train_x: np.ndarray, x: np.ndarray) -> dict:
    """Baselines and event references from the training rows `train_x` for rows `x`:
    {"profile": bikes (n, H), "p_empty": {"climatology", "persistence"}, "p_full": {...}}."""
    n_st = int(max(train_x[:, F.COL["station_index"]].max(), x[:, F.COL["station_index"]].max()))
    cap, now = np.asarray(x[:, _CAP], dtype=np.float64), np.asarray(x[:, F.HISTORY_LEN - 1], dtype=np.float64)
    profile = velib_profile.Profiles(velib_profile.build(train_x), n_st)
    frequency = event_frequencies(train_x, n_st)
    return {"profile": target_profile(profile, x) * cap[:, None],
            "p_empty": {"climatology": target_frequency(frequency["p_empty"], x),
                        "persistence": ps.empty(now)[:, None].repeat(H, axis=1).astype(np.float64)},
            "p_full": {"climatology": target_frequency(frequency["p_full"], x),
                       "persistence": ps.full(now, cap)[:, None].repeat(H, axis=1).astype(np.float64)}}


def score(quantities: np.ndarray | None, y: np.ndarray, x: np.ndarray, baselines: dict[str, np.ndarray],
          refs: dict | None, name: str = "model") -> dict:
    """Per horizon: n (observed targets), mae of the model and each baseline; with `quantities`
    (n, H, len(OUTPUT_QUANTITIES)) also pinball per quantile, coverage of [p10, p90], Brier of the events with their
    references, and reliability counts (RELIABILITY_BINS bins of predicted probability)."""
    y = np.asarray(y, dtype=np.float64)
    seen = np.isfinite(y)
    n = seen.sum(axis=0)
    cap = capacity(x)[:, None]

    def mean(err):
        return [round(float(v), 4) if c else None
                for v, c in zip(np.where(seen, err, 0.0).sum(axis=0) / np.maximum(n, 1), n)]

    def reference_brier(r, happened):
        """None at a horizon where a scored row has no reference: a skill compares forecasts of the same outcomes."""
        lacking = (seen & ~np.isfinite(r)).any(axis=0)
        return [None if lack else v for v, lack in zip(mean((r - happened) ** 2), lacking)]

    points = {k: served(v, cap) for k, v in baselines.items()}
    if quantities is not None:
        points = {name: quantities[:, :, _Q["bikes"]], **points}
    out: dict = {"n": n.tolist(), "mae": {k: mean(np.abs(p - y)) for k, p in points.items()}}
    if quantities is None:
        return out
    out["pinball"] = {}
    for q_name, tau in QUANTILES.items():
        out["pinball"][q_name] = mean(ps.pinball_losses(y, quantities[:, :, _Q[q_name]], tau))
    out["coverage_p10_p90"] = mean((y >= quantities[:, :, _Q["bikes_p10"]]) & (y <= quantities[:, :, _Q["bikes_p90"]]))
    events = {"p_empty": ps.empty(y), "p_full": ps.full(y, x[:, _CAP][:, None])}  # a 0-dock station is full (and empty)
    out["brier"], out["reliability"] = {}, {}
    for ev in EVENTS:
        happened = events[ev].astype(np.float64)
        p = quantities[:, :, _Q[ev]]
        out["brier"][ev] = {name: mean((p - happened) ** 2),
                            **{k: reference_brier(r, happened) for k, r in (refs or {}).get(ev, {}).items()}}
        b = np.minimum((p * RELIABILITY_BINS).astype(np.int64), RELIABILITY_BINS - 1)[seen]
        out["reliability"][ev] = {"count": np.bincount(b, minlength=RELIABILITY_BINS).tolist(),
                                  "sum_predicted": [round(float(v), 3) for v in
                                                    np.bincount(b, p[seen], RELIABILITY_BINS)],
                                  "observed": np.bincount(b, happened[seen], RELIABILITY_BINS).astype(int).tolist()}
    return out


def evaluate_model(storage, model_uri: str, snapshots_root: str, start, end, states_root: str | None = None) -> dict:
    """Scores of a packaged model on the origins in [start, end] (UTC hours) of a snapshot store, by
    Europe/Paris day; a day that overlaps the model's training span is flagged `in_sample` (its score
    says nothing about unseen days). Baselines: persistence and same_day_type. `states_root`: a store
    whose stored hourly states may serve the hours they settle (training.samples.stream_samples)."""
    hour = timedelta(hours=1)
    first = start - (F.HISTORY_LEN - 1) * hour
    s, _ = stream_samples(storage, snapshots_root, first, end + H * hour, SkipReport(), states_root=states_root)
    s = s.take(s.origin <= int((end - first) / hour))  # the origins asked for; later hours are their targets
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = extract(storage.read_bytes(model_uri), Path(tmp))
        model = inference.model_fn(str(model_dir))
        mapping = json.loads((model_dir / inference.MAPPINGS).read_text())["station_index"]
        meta = json.loads((model_dir / inference.METADATA).read_text())
    if len(s) == 0 or s.codes is None:  # codes are set whenever a grid gave samples
        raise ConfigError(f"no origin in {iso_minute(start)}..{iso_minute(end)} has 24 h of history "
                         "and an observed target in this store")
    # The model's own station mapping, as the windows stage would send it.
    s.x[:, F.COL["station_index"]] = np.array([mapping.get(c, F.UNKNOWN_STATION_INDEX) for c in s.codes.tolist()],
                                              dtype=np.float32)
    unknown = int((s.x[:, F.COL["station_index"]] == F.UNKNOWN_STATION_INDEX).sum())
    span = training_span(meta)
    days = s.local_days()
    seasonal = same_day_type(s)
    per_day = []
    for d in np.unique(days):
        m = days == d
        day = date.fromordinal(int(d))
        x = s.x[m].astype(np.float64)
        first_o, last_o = s.hours[int(s.origin[m].min())], s.hours[int(s.origin[m].max())]
        per_day.append({"day": day.isoformat(), "day_type": day_type(day), "windows": int(m.sum()),
                        "in_sample": in_training_span(span, first_o + hour, last_o + H * hour),
                        **score(model.quantities(x), s.y[m], x,
                                {"persistence": persistence(x), "same_day_type": seasonal[m]}, None)})
    return {"model": model.version, "samples": len(s), "unknown_station_samples": unknown,
            "training_span": None if span is None else [iso_minute(t) for t in span],
            "first_origin": f"{iso_minute(s.hours[int(s.origin.min())])}",
            "last_origin": f"{iso_minute(s.hours[int(s.origin.max())])}", "by_day": per_day}
