"""The local calendar of every target hour, from the features an origin's window sends."""

from datetime import datetime, timedelta

import numpy as np
import pytest

from velibcast.timeutil import PARIS, UTC
from velibcast.transform_code import velib_features as F
from velibcast.transform_code import velib_gbm


def row_of(origin_utc: datetime) -> np.ndarray:
    """A FEATURE_COLUMNS row holding only the origin's TIME_FEATURES (what target_calendar reads)."""
    x = np.zeros(len(F.FEATURE_COLUMNS))
    for name, v in zip(F.TIME_FEATURES, F.time_features(origin_utc.astimezone(PARIS))):
        x[F.COL[name]] = v
    return x


def test_time_features_name_the_clock_change_ahead_and_the_first_horizon_after_it():
    # 2024-03-31 02:00 CET -> 03:00 CEST; 2024-10-27 03:00 CEST -> 02:00 CET
    assert F.time_features(datetime(2024, 3, 30, 23, tzinfo=UTC).astimezone(PARIS))[4:] == (1, 2)
    assert F.time_features(datetime(2024, 10, 26, 22, tzinfo=UTC).astimezone(PARIS))[4:] == (-1, 3)
    assert F.time_features(datetime(2024, 10, 26, 1, tzinfo=UTC).astimezone(PARIS))[4:] == (-1, 24)  # 24 h before
    assert F.time_features(datetime(2024, 10, 26, 0, tzinfo=UTC).astimezone(PARIS))[4:] == (0, 0)  # 25 h before
    assert F.time_features(datetime(2024, 10, 27, 1, tzinfo=UTC).astimezone(PARIS))[4:] == (0, 0)  # just after


@pytest.mark.parametrize("night", [datetime(2024, 3, 30, tzinfo=UTC), datetime(2024, 10, 26, tzinfo=UTC),
                                   datetime(2022, 5, 25, tzinfo=UTC)])
def test_every_target_is_read_at_its_local_hour_and_day_type_across_a_clock_change(night):
    """Each origin of the two days around a change, at every horizon: the hour and day type the
    model reads are those of the target instant in Europe/Paris (spring, autumn, and a plain night)."""
    origins = [night + timedelta(hours=k) for k in range(48)]
    x = np.array([row_of(t) for t in origins])
    for h in range(1, F.MAX_HORIZON + 1):
        hour, day = velib_gbm.target_calendar(x, np.full(len(x), h))
        local = [(t + timedelta(hours=h)).astimezone(PARIS) for t in origins]
        assert hour.tolist() == [t.hour for t in local], h
        assert day.tolist() == [int(F.is_non_working_day(t.date())) for t in local], h
