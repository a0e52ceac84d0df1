"""Training samples follow the serving windows exactly (no train/serve skew) and split by time."""

import copy
from datetime import datetime

import numpy as np
import pytest

from tests.helpers import REPO
from velibcast.datasets import ingest, windows
from velibcast.datasets.report import SkipReport
from velibcast.storage import Storage
from velibcast.timeutil import UTC
from velibcast.training.samples import samples_from_grid, station_mapping, stream_samples
from velibcast.training.synthetic import make_grid
from velibcast.transform_code import velib_features as F

START = datetime(2022, 3, 26, 12, tzinfo=UTC)  # spans the switch to summer time


@pytest.fixture(scope="module")
def grid():
    g = make_grid(15, 60, START, seed=2, gap_rate=0.03)
    g.installed[3, 30] = False
    g.renting[4, 40] = False
    return g


def test_samples_match_serving_windows(grid):
    mapping = station_mapping(grid.station_codes[:-2])  # two stations unknown to the model
    s = samples_from_grid(grid, mapping)
    state = windows.StateGrid(grid.hours, grid.station_codes, grid.bikes, np.ones_like(grid.installed),
                              np.isfinite(grid.bikes), grid.installed, grid.renting, grid.capacity.astype(np.int64),
                              grid.lat, grid.lon, age_s=grid.age_s)
    origins = [grid.hours[j] for j in range(23, len(grid.hours) - 24)]
    served = {(code, b.origin_ts): row for b in windows.batches_from_grid(state, origins, mapping, SkipReport())
              for code, row in zip(b.station_codes.tolist(), b.feature_rows())}
    ours = {(grid.station_codes[st], grid.hours[o]): row for row, o, st in zip(s.x, s.origin, s.station)}
    assert ours, "no samples"
    # every sample is a served window (the sample also needs a target, so fewer of them)
    for key, row in ours.items():
        assert key in served
        np.testing.assert_allclose(row, np.array(served[key], dtype=np.float32), rtol=0, atol=1e-5)
    unknown = [r for r in s.x if r[F.COL["station_index"]] == 0]
    assert unknown, "unknown stations must get the reserved index"
    assert len(np.unique(s.x[:, F.COL[F.STATE_AGE]])) > 30, "the ages compared must vary"


def test_targets_are_the_next_24_hours_nan_where_unusable(grid):
    s = samples_from_grid(grid, station_mapping(grid.station_codes))
    assert s.y.shape == (len(s), 24)
    for i in (0, len(s) // 2, len(s) - 1):
        st, o = int(s.station[i]), int(s.origin[i])
        np.testing.assert_array_equal(s.y[i], grid.bikes[st, o + 1:o + 25].astype(np.float32))
        np.testing.assert_array_equal(s.x[i, :24], grid.bikes[st, o - 23:o + 1])
    assert np.isnan(s.y).any() and np.isfinite(s.y).any(axis=1).all(), "gaps are NaN targets; no sample without one"


def test_an_unobserved_target_hour_is_nan_and_counted(grid):
    everything = samples_from_grid(grid, station_mapping(grid.station_codes))
    observed = np.ones(len(grid.hours), bool)
    observed[40] = False
    report = SkipReport()
    s = samples_from_grid(grid, station_mapping(grid.station_codes), observed, report)
    assert len(s) == len(everything), "an origin keeps its other horizons"
    at_40 = s.origin[:, None] + np.arange(1, 25)[None, :] == 40
    assert np.isnan(s.y[at_40]).all() and np.isfinite(s.y[~at_40]).sum() == np.isfinite(everything.y[~at_40]).sum()
    assert report.counts == {"target_not_observed": int(np.isfinite(everything.y[at_40]).sum())}


def test_a_target_whose_state_is_the_origins_own_record_is_nan_and_counted(grid):
    everything = samples_from_grid(grid, station_mapping(grid.station_codes))
    i = len(everything) // 2
    st, o = int(everything.station[i]), int(everything.origin[i])
    aged = copy.copy(grid)
    aged.age_s = grid.age_s.copy()
    aged.age_s[st, o + 1] = aged.age_s[st, o] + 3600  # at o+1 the station still shows its record of o
    report = SkipReport()
    s = samples_from_grid(aged, station_mapping(grid.station_codes), None, report)
    at = (s.station == st) & (s.origin == o)
    assert np.isnan(s.y[at, 0]).all() and np.isfinite(s.y[at, 1:3]).all()
    # earlier origins see a newer record at o+1 than their own, and o+1's origin a newer one at o+2
    assert report.counts == {"target_is_origin_record": 1}
    assert np.isfinite(s.y).sum() == np.isfinite(everything.y).sum() - 1


def test_streamed_samples_never_score_a_target_that_repeats_the_origins_record():
    """The 2022 scraper took no capture between 02:00 and 03:00 Paris on 2022-05-24: every station's
    state at 01:00Z was its record of 00:00Z, and persistence would score 0 on all its T+1 targets."""
    report = SkipReport()
    s, _ = stream_samples(Storage(), str(REPO / "sample_data"), datetime(2022, 5, 23, 0, tzinfo=UTC),
                          datetime(2022, 5, 24, 6, tzinfo=UTC), report)
    assert report.counts["target_is_origin_record"] > 1000
    for o in np.unique(s.origin):
        at = (s.origin == o) & np.isfinite(s.y[:, 0])
        if at.any():
            assert (s.y[at, 0] == s.x[at, 23]).mean() < 0.5, s.hours[o]


def test_targets_after_the_span_and_before_a_cut_are_masked(grid):
    s = samples_from_grid(grid, station_mapping(grid.station_codes), last_hour=30)
    assert np.isnan(s.y[s.origin[:, None] + np.arange(1, 25)[None, :] > 30]).all()
    assert s.origin.max() < 30, "an origin with every target after the span is dropped"
    full = samples_from_grid(grid, station_mapping(grid.station_codes))
    cut = full.targets_before(31)  # what a model trained before hour 31 may learn
    np.testing.assert_array_equal(cut.y, s.y)
    np.testing.assert_array_equal(cut.x, s.x)


def test_streamed_samples_never_score_against_a_state_carried_forward():
    """The 2025 sample has no capture at 15:00Z and 17:00Z on 2025-09-13: the grid carries 14:00Z and
    16:00Z forward, so a target there would equal persistence for every station (MAE 0.000)."""
    report = SkipReport()
    s, _ = stream_samples(Storage(), str(REPO / "sample_data" / "2025-09"), datetime(2025, 9, 12, 15, tzinfo=UTC),
                          datetime(2025, 9, 14, 0, tzinfo=UTC), report)
    rows, cols = np.nonzero(np.isfinite(s.y))
    targets = {s.hours[int(o)] for o in np.unique(s.origin[rows] + cols + 1)}
    assert datetime(2025, 9, 13, 15, tzinfo=UTC) not in targets
    assert datetime(2025, 9, 13, 17, tzinfo=UTC) not in targets
    assert datetime(2025, 9, 13, 18, tzinfo=UTC) in targets  # from origin 17:00Z: a history may carry a state forward
    assert max(targets) <= datetime(2025, 9, 14, 0, tzinfo=UTC), "no target after the span"
    assert report.counts["target_not_observed"] > 0
    same = (s.y[:, :3] == s.x[:, 23:24]).mean(axis=0)
    assert (same < 0.9).all(), same


def test_samples_read_from_ingested_states_equal_the_samples_of_the_raw_captures(tmp_path):
    """A store whose first days are ingested (the last one is not: read raw) trains on exactly the
    samples, targets and skip counts of the captures alone."""
    storage, root = Storage(), str(tmp_path / "store")
    for p in sorted((REPO / "sample_data" / "2025-09" / "velib" / "snapshots").glob("*.jsonl.gz")):
        storage.write_bytes(f"{root}/velib/snapshots/{p.name}", p.read_bytes())
    done = ingest.ingest(storage, root, root, datetime(2025, 9, 12, tzinfo=UTC), datetime(2025, 9, 14, tzinfo=UTC))
    assert done.written == ["2025-09-12", "2025-09-13"]
    span = (datetime(2025, 9, 12, 15, tzinfo=UTC), datetime(2025, 9, 14, 12, tzinfo=UTC))
    raw_report, stored_report = SkipReport(), SkipReport()
    raw, raw_map = stream_samples(storage, root, *span, raw_report)
    stored, stored_map = stream_samples(storage, root, *span, stored_report, states_root=root)
    assert len(raw) > 1000 and stored_map == raw_map
    for name in ("x", "y", "origin", "station", "codes"):
        np.testing.assert_array_equal(getattr(stored, name), getattr(raw, name), err_msg=name)
    assert stored.hours == raw.hours and stored_report.counts == raw_report.counts


def test_samples_and_windows_give_a_station_hour_the_same_state_age():
    """The age of the state at the origin is read from the same grid by one definition: a sample
    trains on the age its serving window sends, however the two paths chunk the hours."""
    root = str(REPO / "sample_data" / "2025-09")
    s, mapping = stream_samples(Storage(), root, datetime(2025, 9, 12, 15, tzinfo=UTC),
                                datetime(2025, 9, 14, 0, tzinfo=UTC), SkipReport())
    origins = sorted({s.hours[int(o)] for o in np.unique(s.origin)})
    sent = {(code, b.origin_ts): (age, stale)
            for b in windows.iter_window_batches(Storage(), root, origins, mapping, SkipReport(), chunk_hours=5)
            for code, age, stale in zip(b.station_codes.tolist(), b.state_age_min.tolist(), b.stale.tolist())}
    ages = s.x[:, F.COL[F.STATE_AGE]]
    got = {(c, s.hours[int(o)]): (int(a), 0) for c, o, a in zip(s.codes.tolist(), s.origin, ages)}
    assert got.items() <= sent.items()
    assert 0 < np.median(ages) < 60 < ages.max(), "hourly captures at irregular minutes: states minutes old"
