import random

import pytest

from velibcast.training.package import extract
from velibcast.training.synthetic import untrained_archive
from velibcast.transform_code.velib_features import STATIC_FEATURES

N_STATIONS = 20


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory):
    return extract(untrained_archive(N_STATIONS, seed=3), tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="session")
def model(model_dir):
    from velibcast.transform_code import inference

    return inference.model_fn(str(model_dir))


def make_features(n, seed=0, station_index=None):
    """n feature dicts shaped like the JSON Lines `features` object."""
    rnd = random.Random(seed)
    out = []
    for _ in range(n):
        cap = rnd.randint(10, 50)
        out.append({
            "history": [rnd.randint(0, cap) for _ in range(24)],
            "hour": rnd.randint(0, 23), "day_of_week": rnd.randint(0, 6), "non_working_day": 0,
            "non_working_next_day": rnd.randint(0, 1),
            "capacity": cap,
            "station_index": rnd.randint(1, N_STATIONS) if station_index is None else station_index,
            "lat": 48.85 + rnd.random() / 50, "lon": 2.33 + rnd.random() / 30,
            "state_age_min": rnd.randint(0, 90), "stale": 0, "clock_change_h": 0, "clock_change_horizon": 0,
        })
    return out


def csv_line(f):
    return ",".join(str(v) for v in f["history"] + [f[k] for k in STATIC_FEATURES])


@pytest.fixture
def features():
    return make_features


@pytest.fixture
def to_csv():
    return lambda feats: "".join(csv_line(f) + "\n" for f in feats)
