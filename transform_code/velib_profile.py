"""Station profiles: mean occupancy by station x day type (working, non-working) x local hour.

Beyond a few hours, what a station will hold is mostly its daily rhythm, which the 24 h
history shows for one day of one type only. The profile is learnt from the training span's
origins (occupancy at each origin, by the origin's hour and day type), so it knows nothing
after the span. A station's cell is shrunk towards the network's cell by PRIOR_SAMPLES
pseudo-observations: a station seen on one Sunday is not a Sunday profile yet. Row 0
(UNKNOWN_STATION_INDEX) is the network's own profile, for stations the model never saw.

profiles.json: {"network": [2][24], "stations": {"<station_index>": [2][24]}}, day type
0 = working, 1 = non-working.

event_profiles.json: the same tables of how often the station was empty (0 bikes) and full
(0 free docks) at the origins, {"p_empty": spec, "p_full": spec}: the station's climatology of
the two events, which the predictive distribution's probabilities are blended with
(velib_distribution): where a station's own habits say more than its forecast occupancy's
bin does, far ahead most.
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

FILE = "profiles.json"
EVENTS_FILE = "event_profiles.json"
EVENTS = ("p_empty", "p_full")
HOURS = 24
PRIOR_SAMPLES = 3.0


def occupancy_now(x):
    """Occupancy at the origin: bikes_lag0 over capacity (capacity 0 read as 1)."""
    return x[:, F.HISTORY_LEN - 1] / np.maximum(x[:, F.COL["capacity"]], 1.0)


def tables(x, values=None):
    """Sums and counts of `values` (one per FEATURE_COLUMNS row; default: the occupancy at the origin,
    what the model uses) by station_index x cell (day type * HOURS + hour), (max index + 1, 2 * HOURS)
    each, and the network's mean per cell (2 * HOURS,)."""
    x = np.asarray(x, dtype=np.float64)
    occ = occupancy_now(x) if values is None else np.asarray(values, dtype=np.float64)
    hour = x[:, F.COL["hour"]].astype(np.int64)
    cell = x[:, F.COL[F.NON_WORKING]].astype(np.int64) * HOURS + hour
    station = x[:, F.COL["station_index"]].astype(np.int64)
    shape = (int(station.max()) + 1 if len(x) else 1, 2 * HOURS)
    sums, counts = np.zeros(shape), np.zeros(shape)
    np.add.at(sums, (station, cell), occ)
    np.add.at(counts, (station, cell), 1.0)
    overall = float(occ.mean()) if len(occ) else 0.5
    h_cnt = np.bincount(hour, minlength=HOURS)
    by_hour = np.where(h_cnt > 0, np.bincount(hour, occ, HOURS) / np.maximum(h_cnt, 1), overall)
    n_sum, n_cnt = sums.sum(axis=0), counts.sum(axis=0)
    # A day type the span lacks takes the other's hours: better than a constant, and unused by a
    # model that serves persistence on day types it never saw.
    network = np.where(n_cnt > 0, n_sum / np.maximum(n_cnt, 1), np.tile(by_hour, 2))
    return sums, counts, network


def shrunk(sums, counts, network):
    """A station's cell mean drawn towards the network's by PRIOR_SAMPLES pseudo-observations."""
    return (sums + PRIOR_SAMPLES * network) / (counts + PRIOR_SAMPLES)


def build(x, values=None):
    """The profiles.json spec from FEATURE_COLUMNS rows of the training span (see tables)."""
    sums, counts, network = tables(x, values)
    prof = shrunk(sums, counts, network)
    seen = np.flatnonzero(counts.sum(axis=1) > 0)
    return {"network": _rows(network),
            "stations": {str(s): _rows(prof[s]) for s in seen.tolist() if s != F.UNKNOWN_STATION_INDEX}}


def event_values(x):
    """(n, 2) whether each FEATURE_COLUMNS row's station is empty, and full, at the origin, as 0/1 (a
    0-dock station is both, as the scores count it)."""
    x = np.asarray(x, dtype=np.float64)
    now, cap = x[:, F.HISTORY_LEN - 1], x[:, F.COL["capacity"]]
    return np.column_stack([now <= 0, now >= cap]).astype(np.float64)


def build_events(x):
    """The event_profiles.json spec from FEATURE_COLUMNS rows of the training span."""
    v = event_values(x)
    return {name: build(x, v[:, k]) for k, name in enumerate(EVENTS)}


def _rows(flat):
    """(2 * HOURS,) -> [working day's hours, non-working day's hours], rounded for the JSON."""
    return [[round(float(v), 4) for v in flat[d * HOURS:(d + 1) * HOURS]] for d in range(2)]


class Profiles:
    """lookup(station_index, day type, local hour) -> mean occupancy, vectorised."""

    def __init__(self, spec, n_stations):
        net = np.asarray(spec["network"], dtype=np.float64)
        if net.shape != (2, HOURS):
            raise ModelLoadError(f"{FILE}: network profile is not 2 x {HOURS}; repackage the model")
        self.table = np.repeat(net[None], n_stations + 1, axis=0)
        for k, rows in spec["stations"].items():
            i = int(k)
            if not 1 <= i <= n_stations:
                raise ModelLoadError(f"{FILE}: station_index {i} outside 1..{n_stations}; repackage the model")
            self.table[i] = rows

    def lookup(self, station, day, hour):
        station = np.clip(np.asarray(station, dtype=np.int64), 0, len(self.table) - 1)
        return self.table[station, np.asarray(day, dtype=np.int64), np.asarray(hour, dtype=np.int64) % HOURS]


def load(model_dir, n_stations):
    with open(os.path.join(model_dir, FILE), encoding="utf-8") as f:
        return Profiles(json.load(f), n_stations)


def load_events(model_dir, n_stations):
    """{"p_empty": Profiles, "p_full": Profiles} of a model directory."""
    with open(os.path.join(model_dir, EVENTS_FILE), encoding="utf-8") as f:
        spec = json.load(f)
    if set(spec) != set(EVENTS):
        raise ModelLoadError(f"{EVENTS_FILE}: holds {sorted(spec)}, not {list(EVENTS)}; repackage the model")
    return {name: Profiles(spec[name], n_stations) for name in EVENTS}
