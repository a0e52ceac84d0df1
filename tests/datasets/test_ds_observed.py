"""A target hour is an observation only when a capture lies near it (datasets.observed)."""

from datetime import datetime, timedelta

import numpy as np

from tests.helpers import REPO
from velibcast.datasets.observed import capture_times, observed_hours
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
