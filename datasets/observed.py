"""Which states of a grid are observations, as opposed to states carried forward.

The state of a station at hour h is its latest record observed at or before h (datasets/states.py),
and a window's history may use one up to max_staleness old (the serving rule). The truth a model is
trained and scored on must have been seen: a target's state counts only when the station's own
record was observed at most TARGET_CAPTURE_TOLERANCE_MINUTES before the hour (h - observed_at <=
TOLERANCE). The rule is per station and hour: a capture taken just after the hour does not make an
older state an observation (the state at h is still that older record), and a station whose upstream
record has not refreshed is carried forward even when its neighbours were observed on the hour.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np

from velibcast import constants as C

TOLERANCE = timedelta(minutes=C.TARGET_CAPTURE_TOLERANCE_MINUTES)


def observed_states(grid) -> np.ndarray:
    """(stations, hours) bool: the state is usable (bikes known) and observed within TOLERANCE before
    its hour. `grid.age_s` is each state's age at its hour in seconds (datasets.windows.StateGrid,
    the age the windows and velib_features.state_age_minutes read); it is compared in seconds, as the
    usable rule compares it with max_staleness, since whole minutes would admit a state 45:59 old. A
    grid without ages (age_s None: given actuals) holds states observed on the hour."""
    usable = np.isfinite(np.asarray(grid.bikes, dtype=np.float64))
    age_s = getattr(grid, "age_s", None)
    if age_s is None:
        return usable
    return usable & (np.asarray(age_s) <= TOLERANCE.total_seconds())
