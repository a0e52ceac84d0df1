"""The frequency reference of p_empty and p_full (the station's historical frequency of the event at the
target's Paris hour and day type) is one rule, proper_scores.event_frequency: a backtest takes it from
its training rows, a forward score from the hourly states; on the same states the two agree."""

from datetime import datetime, timedelta

import numpy as np
import pytest

from velibcast import proper_scores as ps
from velibcast.flows import score
from velibcast.timeutil import PARIS, UTC
from velibcast.training import evaluate
from velibcast.transform_code import velib_features as F
from velibcast.transform_code import velib_profile

CAP = 10
# Thursday 12 May 2022 through Wednesday 25 May: both day types, and hours some station never has.
HOURS = [datetime(2022, 5, 11, 22, tzinfo=UTC) + timedelta(hours=k) for k in range(14 * 24)]


def _states(seed: int = 3):
    """Five stations' hourly states: random counts (zeros and full docks frequent), capacity 0 at one
    station (full whatever it holds), known on about two thirds of the hours, never at the last."""
    rng = np.random.default_rng(seed)
    bikes = rng.choice([0, 0, 3, CAP, CAP], size=(5, len(HOURS))).astype(np.float64)
    capacity = np.full(bikes.shape, CAP)
    capacity[2] = 0
    known = rng.random(bikes.shape) < 0.66
    known[4] = False
    known[:, [k for k, h in enumerate(HOURS) if h.astimezone(PARIS).hour == 4]] = False  # 04:00 never seen
    return bikes, capacity, known


def _training_rows(bikes, capacity, known) -> np.ndarray:
    """The backtest's training rows of the same states: one per known station-hour, station_index = row + 1
    (0 is the model's unknown station)."""
    station, col = np.nonzero(known)
    x = np.zeros((len(station), len(F.FEATURE_COLUMNS)), np.float32)
    local = [HOURS[c].astimezone(PARIS) for c in col]
    x[:, F.COL["station_index"]] = station + 1
    x[:, F.COL["hour"]] = [t.hour for t in local]
    x[:, F.COL[F.NON_WORKING]] = [F.is_non_working_day(t.date()) for t in local]
    x[:, F.HISTORY_LEN - 1] = bikes[station, col]
    x[:, F.COL["capacity"]] = capacity[station, col]
    return x


def test_a_backtest_and_a_forward_score_take_the_same_frequencies_from_the_same_states():
    bikes, capacity, known = _states()
    forward = score.Climatology.of_states(list("ABCDE"), HOURS, bikes, capacity, known)
    backtest = evaluate.event_frequencies(_training_rows(bikes, capacity, known), n_stations=5)
    for event, table in (("p_empty", forward.empty), ("p_full", forward.full)):
        # the forward table's last row and the backtest's row 0: a station the history never saw
        np.testing.assert_array_equal(backtest[event], np.concatenate([table[-1:], table[:-1]]), err_msg=event)
    assert np.isnan(forward.empty[:, :, 4]).all()  # no station seen at 04:00: no reference
    assert (forward.empty[4] == forward.empty[5])[~np.isnan(forward.empty[4])].all()  # never known: the network's
    network, seen_hours = forward.full[-1], ~np.isnan(forward.full[2])
    # a 0-dock station is full whatever it holds: always at least as often as the network
    assert (forward.full[2] >= network)[seen_hours].all() and (forward.full[2] > network)[seen_hours].any()
    assert 0 < np.nanmean(forward.empty[0]) < 1  # a frequency, not a 0/1 copy of the states


def test_the_backtest_reference_is_the_frequency_at_each_targets_hour_and_day_type():
    bikes, capacity, known = _states()
    train_x = _training_rows(bikes, capacity, known)
    tables = evaluate.event_frequencies(train_x, n_stations=5)
    # an origin at 22:00 on a working day before a non-working one: T+1 is 23:00 working, T+2 midnight non-working
    x = np.zeros((1, len(F.FEATURE_COLUMNS)))
    x[0, [F.COL["station_index"], F.COL["hour"], F.COL[F.NON_WORKING], F.COL[F.NON_WORKING_NEXT]]] = [2, 22, 0, 1]
    x[0, F.COL["capacity"]] = CAP
    refs = evaluate.references(train_x, x)
    for event in ("p_empty", "p_full"):
        clim = refs[event]["climatology"]
        assert clim[0, 0] == tables[event][2, 0, 23] and clim[0, 1] == tables[event][2, 1, 0]
        assert clim.shape == (1, F.MAX_HORIZON)


def test_a_horizon_whose_rows_lack_a_reference_has_no_brier_for_it():
    x = np.zeros((2, len(F.FEATURE_COLUMNS)))
    x[:, F.COL["capacity"]] = CAP
    y = np.full((2, F.MAX_HORIZON), 3.0)
    quantities = np.zeros((2, F.MAX_HORIZON, len(F.OUTPUT_QUANTITIES)))
    reference = np.full((2, F.MAX_HORIZON), 0.25)
    reference[1, 4] = np.nan  # one row has no frequency at T+5h
    refs = {"p_empty": {"climatology": reference}, "p_full": {"climatology": reference}}
    s = evaluate.score(quantities, y, x, {"persistence": evaluate.persistence(x)}, refs)
    brier = s["brier"]["p_empty"]["climatology"]
    assert brier[4] is None  # a skill compares forecasts of the same outcomes
    assert brier[3] == pytest.approx(0.25 ** 2)
    assert ps.skill(s["brier"]["p_empty"]["model"][3], brier[3]) is not None


def test_the_backtest_reference_is_the_served_models_own_climatology_of_the_events():
    # The model blends p_empty and p_full with event profiles it builds itself (transform_code, which
    # ships alone); a skill against frequency then says what the model adds to its own climatology.
    bikes, capacity, known = _states()
    train_x = _training_rows(bikes, capacity, known)
    tables = evaluate.event_frequencies(train_x, n_stations=5)
    for event, spec in velib_profile.build_events(train_x).items():
        served = velib_profile.Profiles(spec, 5).table
        seen = ~np.isnan(tables[event])
        np.testing.assert_allclose(tables[event][seen], served[seen], atol=5e-5, err_msg=event)  # JSON's 4 decimals
