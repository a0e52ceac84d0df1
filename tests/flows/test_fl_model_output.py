"""A model is code we run: its output is input, validated like a snapshot record.

A model server process whose output_fn returns a value no station can hold (negative, above
its capacity), or its lines in another order than the request's (so a big station's values
land on a small one), fails the run with a DataError naming the object, the line and the
station, and the date's published forecasts are left as they were.
"""

import pytest

from velibcast import storage as st
from velibcast.errors import DataError

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
