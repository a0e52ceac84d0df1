"""A model is code we run: its output is input, validated like a snapshot record.

A model server process whose output_fn returns a value no station can hold (negative, above
its capacity), or its lines in another order than the request's (so a big station's values
land on a small one), fails the run with a DataError naming the object, the line and the
station, and the date's published forecasts are left as they were. What the model reports of
each horizon (its own forecast or a fallback's) reaches the published row.
"""

from datetime import datetime

import pytest

from velibcast import storage as st
from velibcast.errors import DataError
from velibcast.flows import forecasts
from velibcast.flows.nightly import forecast
from velibcast.flows.products import DAY_AHEAD
from velibcast.timeutil import UTC

from .test_fl_faults import _patched_model

NEGATIVE = """
_orig_output_fn = output_fn
def output_fn(prediction, accept):
    counts, unknown, batch = prediction
    return _orig_output_fn((counts * 0 - 5, unknown, batch), accept)
"""

ABOVE_CAPACITY = """
_orig_output_fn = output_fn
def output_fn(prediction, accept):
    counts, unknown, batch = prediction
    return _orig_output_fn((counts * 0 + 999, unknown, batch), accept)
"""

REVERSED = """
_orig_output_fn = output_fn
def output_fn(prediction, accept):
    counts, unknown, batch = prediction
    return _orig_output_fn((counts[::-1], unknown, batch), accept)
"""


@pytest.mark.parametrize("hostile, problem", [
    (NEGATIVE, r"bikes=-5, "),
    (ABOVE_CAPACITY, r"bikes=999, "),
    (REVERSED, r"bikes=\d+, .*; capacity \d+\)"),
], ids=["negative", "above-capacity", "reversed-lines"])
def test_a_model_output_outside_zero_to_capacity_fails_the_run_and_replaces_nothing(
        tmp_path, storage, trained_model, e2e, hostile, problem):
    root = str(tmp_path / "root")
    e2e.copy_snapshots(storage, root)
    good = e2e.run(e2e.config(tmp_path, root, trained_model["model_uri"]))
    before = {o.uri: storage.read_bytes(o.uri) for o in storage.list(st.join(root, "forecasts") + "/")}
    assert good["forecast_parquet"] in before

    model = _patched_model(trained_model["model_uri"], str(tmp_path / "hostile.tar.gz"), hostile)
    words = r"\.out line \d+: record '\S+@\S+': bikes not a whole number in \[0, capacity\] at \+\d+ h \("
    with pytest.raises(DataError, match=words + problem):
        e2e.run(e2e.config(tmp_path, root, model, name="hostile"), force=True)
    after = {o.uri: storage.read_bytes(o.uri) for o in storage.list(st.join(root, "forecasts") + "/")}
    assert after == before, "nothing published by the failed run"
    e2e.published(storage, root)


def test_a_model_trained_without_non_working_days_names_persistence_on_the_rows_it_serves_on_one(
        tmp_path, storage, trained_model, e2e):
    """trained_model saw Monday 05-23 to Wednesday 05-25 only; Thursday 05-26 is Ascension. From 22:00
    Paris time on the Wednesday, T+1 h (23:00) is the model's, every later target is on the holiday."""
    root = str(tmp_path / "root")
    e2e.copy_snapshots(storage, root, first="2022-05-24T17")
    origin = datetime(2022, 5, 25, 20, tzinfo=UTC)
    forecast(product="day-ahead", as_of=datetime(2022, 5, 25, 20, 10, tzinfo=UTC),
             config=e2e.config(tmp_path, root, trained_model["model_uri"]))
    rows = forecasts.read_partition(storage, root, DAY_AHEAD.name, origin.date()).to_pylist()
    assert rows and {r["origin_ts"] for r in rows} == {origin}
    # a station whose state is older than max_staleness is served its profile at every horizon
    stale = {r["station_code"] for r in rows if r["fallback"] == "profile"}
    assert len(stale) < 0.05 * len({r["station_code"] for r in rows})
    assert {r["fallback"] for r in rows if r["station_code"] in stale} == {"profile"}
    rows = [r for r in rows if r["station_code"] not in stale]
    assert {r["fallback"] for r in rows if r["horizon_h"] == 1} == {""}
    assert {r["fallback"] for r in rows if r["horizon_h"] > 1} == {"persistence"}
    by_station: dict[str, set] = {}
    for r in rows:
        if r["horizon_h"] > 1:
            by_station.setdefault(r["station_code"], set()).add(r["bikes_pred"])
    assert all(len(v) == 1 for v in by_station.values()), "persistence forecasts one count at every horizon"
