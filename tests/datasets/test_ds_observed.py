"""A target is an observation only when a capture lies near its hour and its state is a record
observed after the origin's (datasets.observed)."""

from datetime import datetime, timedelta
from types import SimpleNamespace

import numpy as np

from tests.helpers import REPO
from velibcast.datasets.observed import capture_times, news_since_origin, observed_hours
from velibcast.storage import Storage
from velibcast.timeutil import UTC

SAMPLE_2025 = str(REPO / "sample_data" / "2025-09")


def test_an_hour_needs_a_capture_within_the_tolerance():
    h0 = datetime(2022, 5, 24, tzinfo=UTC)
    hours = [h0 + timedelta(hours=k) for k in range(5)]
    # 2022-style drifting captures: 00:10, 01:50 (50 min after 01:00), none near 03:00, 04:44.
    caps = np.array([(h0 + timedelta(minutes=m)).timestamp() for m in (10, 110, 284)])
    assert observed_hours(hours, caps).tolist() == [True, False, True, False, True]
    assert observed_hours(hours, caps, timedelta(minutes=50)).tolist() == [True, True, True, False, True]
    assert not observed_hours(hours, np.array([])).any()


def test_the_2025_sample_lacks_two_saturday_hours():
    caps = capture_times(Storage(), SAMPLE_2025, datetime(2025, 9, 13, 12, tzinfo=UTC), datetime(2025, 9, 13, 20, tzinfo=UTC))
    hours = [datetime(2025, 9, 13, h, tzinfo=UTC) for h in range(12, 21)]
    missing = [h.hour for h, ok in zip(hours, observed_hours(hours, caps)) if not ok]
    assert missing == [15, 17]


def test_a_target_is_news_only_when_its_record_was_observed_after_the_origins_record():
    hours = [datetime(2022, 5, 24, h, tzinfo=UTC) for h in range(3)]  # 00:00, 01:00, 02:00; origin 00:00
    age_s = np.array([
        [600, 4200, 7800],  # observed 23:50, then no newer record: the origin's own at 01:00 and 02:00
        [0, 0, 0],          # a new record every hour
        [2, 3601, 60],      # 23:59:58, then 23:59:59 (one second newer), then 01:59
    ])
    grid = SimpleNamespace(hours=hours, bikes=np.zeros((3, 3)), age_s=age_s)
    rows, origin, target = np.arange(3)[:, None], np.zeros((3, 1), int), np.array([[1, 2]])
    assert news_since_origin(grid, rows, origin, target).tolist() == [[False, False], [True, True], [True, True]]
    grid.age_s = None  # a grid without observation times holds states observed on their hour
    assert news_since_origin(grid, rows, origin, target).all()
