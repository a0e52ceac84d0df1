"""A target's state is an observation only when the station's own record was observed at most the
tolerance before the hour (datasets.observed): never a state carried forward."""

from datetime import datetime, timedelta

import numpy as np

from velibcast.datasets.observed import TOLERANCE, observed_states
from velibcast.datasets.snapshots import write_snapshot
from velibcast.datasets.windows import build_state_grid
from velibcast.storage import Storage
from velibcast.timeutil import UTC

H0 = datetime(2022, 5, 24, tzinfo=UTC)
M = timedelta(minutes=1)


def rec(code: str, observed: datetime, bikes: int = 5) -> dict:
    return {"stationcode": code, "name": code, "capacity": 20, "numbikesavailable": bikes, "numdocksavailable": 20 - bikes,
            "mechanical": bikes, "ebike": 0, "is_installed": "OUI", "is_renting": "OUI", "is_returning": "OUI",
            "coordonnees_geo": {"lat": 48.85, "lon": 2.35}, "duedate": observed.isoformat()}


def test_a_state_counts_by_its_own_age_at_the_hour_not_by_a_capture_near_it(tmp_path):
    storage, root = Storage(), str(tmp_path)
    captures = {
        H0 - 40 * M: [rec("A", H0 - 40 * M), rec("B", H0 - 40 * M)],    # 00:00: both 40 min old
        H0 + 10 * M: [rec("A", H0 + 10 * M), rec("B", H0 + 10 * M)],
        # 01:10: 10 min after 01:00, but the state at 01:00 is still 00:10's, 50 min old
        H0 + 70 * M: [rec("A", H0 + 70 * M), rec("B", H0 + 10 * M)],
        # 01:50: A observed 10 min before 02:00; B's record has not refreshed (110 min old at 02:00)
        H0 + 110 * M: [rec("A", H0 + 110 * M), rec("B", H0 + 10 * M)],
        # 02:15: exactly the tolerance before 03:00 for A; B observed 02:55 but published late
        H0 + 135 * M: [rec("A", H0 + 135 * M), rec("B", H0 + 10 * M)],
        H0 + 220 * M: [rec("A", H0 + 220 * M), rec("B", H0 + 175 * M)],
    }
    for t, records in captures.items():
        write_snapshot(storage, root, t, records, "flat")
    hours = [H0 + k * timedelta(hours=1) for k in range(4)]
    grid = build_state_grid(storage, root, hours)
    assert grid.station_codes == ["A", "B"] and grid.usable.all(), "every state here is a usable one"
    assert TOLERANCE == 45 * M
    assert observed_states(grid).tolist() == [
        [True, False, True, True],    # A: 40, 50, 10, 45 min old
        [True, False, False, True],   # B: 40, 50, 110, 5 min old
    ]


def test_a_grid_without_observation_times_holds_observed_states_where_usable():
    class Given:  # given actuals: every known value observed on the hour
        bikes = np.array([[1.0, np.nan, 3.0]])
        age_s = None
    assert observed_states(Given()).tolist() == [[True, False, True]]
