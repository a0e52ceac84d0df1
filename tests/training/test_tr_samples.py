"""Training samples follow the serving windows exactly (no train/serve skew) and split by time."""

from datetime import datetime

import numpy as np
import pytest

from tests.helpers import REPO
from velibcast.datasets import windows
from velibcast.datasets.report import SkipReport
from velibcast.storage import Storage
from velibcast.timeutil import UTC
from velibcast.training.samples import samples_from_grid, station_mapping, stream_samples, time_split
from velibcast.training.synthetic import make_grid

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
                              grid.lat, grid.lon)
    origins = [grid.hours[j] for j in range(23, len(grid.hours) - 3)]
    served = {(code, b.origin_ts): row for b in windows.batches_from_grid(state, origins, mapping, SkipReport())
              for code, row in zip(b.station_codes.tolist(), b.feature_rows())}
    ours = {(grid.station_codes[st], grid.hours[o]): row for row, o, st in zip(s.x, s.origin, s.station)}
    assert ours, "no samples"
    # every sample is a served window (the sample also needs its 3 targets, so fewer of them)
    for key, row in ours.items():
        assert key in served
        np.testing.assert_allclose(row, np.array(served[key], dtype=np.float32), rtol=0, atol=1e-5)
    unknown = [r for r in s.x if r[-3] == 0]
    assert unknown, "unknown stations must get the reserved index"


def test_targets_are_the_next_three_hours(grid):
    s = samples_from_grid(grid, station_mapping(grid.station_codes))
    i = len(s) // 2
    st, o = int(s.station[i]), int(s.origin[i])
    np.testing.assert_array_equal(s.y[i], grid.bikes[st, o + 1:o + 4])
    np.testing.assert_array_equal(s.x[i, :24], grid.bikes[st, o - 23:o + 1])


def test_time_split_is_ordered_without_target_leakage(grid):
    s = samples_from_grid(grid, station_mapping(grid.station_codes))
    parts = time_split(s, 0.15, 0.25)
    assert parts["train"].origin.max() + 3 < parts["val"].origin.min()
    assert parts["val"].origin.max() + 3 < parts["test"].origin.min()
    assert len(parts["test"]) > 0


def test_a_sample_whose_target_hour_was_not_observed_is_skipped_and_counted(grid):
    everything = samples_from_grid(grid, station_mapping(grid.station_codes))
    observed = np.ones(len(grid.hours), bool)
    observed[40] = False
    report = SkipReport()
    s = samples_from_grid(grid, station_mapping(grid.station_codes), observed, report)
    hits = (everything.origin[:, None] + np.arange(1, 4)[None, :] == 40).any(axis=1)
    assert hits.sum() > 0
    assert len(s) == len(everything) - hits.sum()
    assert not (s.origin[:, None] + np.arange(1, 4)[None, :] == 40).any()
    assert report.counts == {"target_not_observed": int(hits.sum())}


def test_streamed_samples_never_score_against_a_state_carried_forward():
    """The 2025 sample has no capture at 15:00Z and 17:00Z on 2025-09-13: the grid carries 14:00Z and
    16:00Z forward, so a target there would equal persistence for every station (MAE 0.000)."""
    report = SkipReport()
    s, _ = stream_samples(Storage(), str(REPO / "sample_data" / "2025-09"), datetime(2025, 9, 12, 15, tzinfo=UTC),
                          datetime(2025, 9, 14, 0, tzinfo=UTC), report)
    targets = {s.hours[o + k] for o in np.unique(s.origin).tolist() for k in (1, 2, 3)}
    assert datetime(2025, 9, 13, 15, tzinfo=UTC) not in targets
    assert datetime(2025, 9, 13, 17, tzinfo=UTC) not in targets
    assert datetime(2025, 9, 13, 18, tzinfo=UTC) in targets  # from origin 17:00Z: a history may carry a state forward
    assert report.counts["target_not_observed"] > 0
    same = (s.y == s.x[:, 23:24]).mean(axis=0)
    assert (same < 0.9).all(), same
