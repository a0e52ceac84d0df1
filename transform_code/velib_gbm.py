"""Gradient-boosted trees evaluated with NumPy: the `velib_gbm` model family.

Trained with LightGBM (velibcast.training.gbm), shipped as plain JSON (trees.json, with
profiles.json and distribution.json), so the SageMaker PyTorch container needs nothing new
and nothing is unpickled.

- One ensemble per group of horizons (trees.json; trained as the nowcast's 1..3 h, then the
  rest of the day), the horizon being a feature: the horizons of a group share most of what
  they learn (a station's rhythm, how fast it drifts back to it), and a fit on rows sampled
  across them trains in a fraction of one fit per horizon's time; the first hours, where the
  recent history matters most, get an ensemble and rows of their own.
- It predicts the change from the last value as a share of capacity: zero is persistence, and
  stations of 12 and 60 docks share one scale.
- Features (`derive`, the one definition training and serving use): occupancy at t and a few
  earlier occupancies minus it, the occupancy 24 h before the target minus it, the origin's
  and the target's local hour and day type, day_of_week, capacity, lat, lon, and the station
  profile (velib_profile) at the target hour, at the origin hour, and the occupancy now minus
  the profile now, and the profile's change from now to the target, and the age of the state at
  the origin (velib_features.STATE_AGE: a state observed 80 min before t is 80 min further from
  the target than one observed on the hour). The station enters through its profile only, so an unknown station gets the
  network's profile and is otherwise served like a known one.
- config["persistence_on_non_working_days"]: set when training saw no non-working day; a
  target on one then gets persistence (weekday dynamics on a holiday lose to it), and
  `fallback` says so (velib_features.FALLBACKS) for that record and horizon.
- A stale window (velib_features.STALE, decided by the window stage) is served the station's
  profile at each target hour times its capacity, `fallback` "profile"; its p_empty and p_full are
  the events' climatology (velib_distribution).

trees.json: {"ensembles": [{"horizons": [first, last], "nodes": {feature, threshold, left,
right, value}, "roots": [...], "depth": d}, ...]}, one per group, covering 1..MAX_HORIZON once.
Every node is an array entry; a leaf has threshold +inf and both children pointing to itself,
so `depth` steps of "go left if x[feature] <= threshold" reach every leaf.
"""

import json
import os

import numpy as np

try:
    from . import velib_features as F
    from . import velib_profile
    from .velib_errors import ModelLoadError
except ImportError:  # code/ on sys.path, as in the SageMaker container
    import velib_features as F
    import velib_profile
    from velib_errors import ModelLoadError

TREES = "trees.json"
FILES = (TREES, velib_profile.FILE, velib_profile.EVENTS_FILE)  # this family's parameters in model.tar.gz
ARCHITECTURE = "velib_gbm"
LAGS = (1, 2, 3, 4, 5, 6, 8, 12, 18, 23)  # hours before t whose occupancy enters, minus the one at t
DERIVED_FEATURES = (["horizon", "occupancy_lag0"] + [f"occupancy_lag{k}_minus_lag0" for k in LAGS]
                    + ["occupancy_24h_before_target_minus_lag0", "hour", "target_hour", "day_of_week",
                       F.NON_WORKING, "target_non_working", "capacity", "lat", "lon",
                       "profile_target", "profile_now", "occupancy_minus_profile_now", "profile_target_minus_now",
                       F.STATE_AGE])
# Rows evaluated together: (rows x trees) index arrays stay a few MB, in cache.
BLOCK_ROWS = 4096

_CAP = F.COL["capacity"]
_HOUR = F.COL["hour"]
_NW = F.COL[F.NON_WORKING]
_NW_NEXT = F.COL[F.NON_WORKING_NEXT]
_STALE = F.COL[F.STALE]
_CLOCK = F.COL[F.CLOCK_CHANGE]
_CLOCK_AT = F.COL[F.CLOCK_CHANGE_AT]


def target_calendar(x, horizon):
    """Local hour and day type (1 = non-working) of the target hours: the origin's day until
    midnight, then the next day's. A target on the other side of a clock change (velib_features
    CLOCK_CHANGE, from CLOCK_CHANGE_AT on) is an hour later (spring) or earlier (autumn) on the
    clock. Only the target 24 h after 23:00 on the night before the spring change reaches the day
    after next; it is read with the next day's type."""
    horizon = np.asarray(horizon)
    changed = (x[:, _CLOCK_AT] > 0) & (horizon >= x[:, _CLOCK_AT])
    hour = x[:, _HOUR] + horizon + np.where(changed, x[:, _CLOCK], 0)
    day = np.where(hour < velib_profile.HOURS, x[:, _NW], x[:, _NW_NEXT])
    return hour % velib_profile.HOURS, day


def profile_features(x, horizon, profiles):
    """(profile at the target hour, profile at the origin hour) of rows at their horizons."""
    station = x[:, F.COL["station_index"]]
    t_hour, t_day = target_calendar(x, horizon)
    return profiles.lookup(station, t_day, t_hour), profiles.lookup(station, x[:, _NW], x[:, _HOUR])


def derive(x, horizon, prof_target, prof_now):
    """(n, len(FEATURE_COLUMNS)) rows, their horizons (n,) and profile_features (training passes its own,
    each without the value it is the profile of) -> (n, len(DERIVED_FEATURES)) float64."""
    x = np.asarray(x, dtype=np.float64)
    horizon = np.asarray(horizon, dtype=np.int64)
    rows = np.arange(len(x))
    cap = np.maximum(x[:, _CAP], 1.0)
    occ = x[:, : F.HISTORY_LEN] / cap[:, None]
    last = occ[:, -1]
    t_hour, t_day = target_calendar(x, horizon)
    # Oldest first: column k holds t-23h+k, so the target hour a day earlier, t+h-24h, is column h-1.
    day_before = occ[rows, horizon - 1]
    return np.column_stack([
        horizon, last, *(occ[:, -1 - k] - last for k in LAGS), day_before - last,
        x[:, _HOUR], t_hour, x[:, F.COL["day_of_week"]], x[:, _NW], t_day,
        x[:, _CAP], x[:, F.COL["lat"]], x[:, F.COL["lon"]],
        prof_target, prof_now, last - prof_now, prof_target - prof_now, x[:, F.COL[F.STATE_AGE]],
    ])


class Ensemble:
    """The trees of a group of horizons as flat arrays."""

    def __init__(self, spec):
        self.first, self.last = (int(h) for h in spec["horizons"])
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
    """Raw FEATURE_COLUMNS rows -> bikes at T+1h..T+MAX_HORIZON (n, MAX_HORIZON), unrounded."""

    architecture = ARCHITECTURE

    def __init__(self, config, trees, profiles, events):
        if config.get("derived_features") != DERIVED_FEATURES:
            raise ModelLoadError("config.json derived_features differ from this code's; repackage the model")
        self.config = dict(config)
        self.ensembles = [Ensemble(spec) for spec in trees["ensembles"]]
        covered = sorted(h for e in self.ensembles for h in range(e.first, e.last + 1))
        if covered != list(range(1, F.MAX_HORIZON + 1)):
            raise ModelLoadError(f"{TREES}: the ensembles' horizons do not cover 1..{F.MAX_HORIZON} once each; "
                                 "repackage the model")
        self.profiles = profiles
        self.events = events
        self.persist_non_working = bool(config.get("persistence_on_non_working_days", False))

    def served_by(self, x, horizon):
        """(n,) the velib_features.FALLBACKS code of what serves rows at their horizons."""
        code = np.full(len(x), F.MODEL, dtype=np.int64)
        if self.persist_non_working:
            code[target_calendar(x, horizon)[1] == 1] = F.PERSISTENCE
        code[x[:, _STALE] == 1] = F.PROFILE  # no forecast from a state too old to trust, on any day
        return code

    def change(self, x, horizon):
        """Predicted change over capacity of rows at their horizons (n,); zero where persistence serves,
        the profile at the target minus the occupancy now where the profile serves."""
        x = np.asarray(x, dtype=np.float64)
        out = np.empty(len(x))
        code = self.served_by(x, horizon)
        for ens in self.ensembles:
            rows = np.flatnonzero((horizon >= ens.first) & (horizon <= ens.last))
            for i in range(0, len(rows), BLOCK_ROWS):
                block = rows[i : i + BLOCK_ROWS]
                xb, hb = x[block], horizon[block]
                prof = profile_features(xb, hb, self.profiles)
                profile = code[block] == F.PROFILE
                trees = ~profile  # a stale row's trees would be thrown away: not evaluated
                if trees.any():
                    out[block[trees]] = ens.predict(derive(xb[trees], hb[trees], *(p[trees] for p in prof)))
                if profile.any():
                    out[block[profile]] = (prof[0] - velib_profile.occupancy_now(xb))[profile]
        out[code == F.PERSISTENCE] = 0.0
        return out

    def predict(self, x):
        x = np.asarray(x, dtype=np.float64)
        n, H = len(x), F.MAX_HORIZON
        change = self.change(np.repeat(x, H, axis=0), np.tile(np.arange(1, H + 1), n)).reshape(n, H)
        cap = np.maximum(x[:, _CAP], 1.0)
        return x[:, F.HISTORY_LEN - 1 : F.HISTORY_LEN] + change * cap[:, None]

    def climatology(self, x):
        """(n, MAX_HORIZON, 2) the station's frequency of being empty, and full, at each target's local hour
        and day type over the training span (velib_profile.EVENTS)."""
        x = np.asarray(x, dtype=np.float64)
        out = np.empty((len(x), F.MAX_HORIZON, len(velib_profile.EVENTS)))
        station = x[:, F.COL["station_index"]]
        for h in range(1, F.MAX_HORIZON + 1):
            hour, day = target_calendar(x, h)
            for k, name in enumerate(velib_profile.EVENTS):
                out[:, h - 1, k] = self.events[name].lookup(station, day, hour)
        return out

    def fallback(self, x):
        """(n, MAX_HORIZON) the FALLBACKS code of what serves each record's horizons."""
        x = np.asarray(x, dtype=np.float64)
        n, H = len(x), F.MAX_HORIZON
        return self.served_by(np.repeat(x, H, axis=0), np.tile(np.arange(1, H + 1), n)).reshape(n, H)


def load(model_dir, config):
    with open(os.path.join(model_dir, TREES), encoding="utf-8") as f:
        trees = json.load(f)
    n = int(config["n_stations"])
    return GbmForecaster(config, trees, velib_profile.load(model_dir, n), velib_profile.load_events(model_dir, n))
