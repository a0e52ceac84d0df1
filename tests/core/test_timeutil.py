from datetime import datetime, timedelta

from velibcast.timeutil import PARIS, UTC, seconds_between


def test_seconds_between_takes_datetimes_and_iso_strings_and_keeps_the_sign():
    t = datetime(2022, 5, 26, 2, 30, tzinfo=UTC)
    assert seconds_between(t, t + timedelta(seconds=95.5)) == 95.5
    assert seconds_between(t.isoformat(), (t + timedelta(minutes=2)).isoformat()) == 120.0
    assert seconds_between(t + timedelta(seconds=1), t) == -1.0


def test_paris_is_utc_plus_two_in_summer():
    assert datetime(2022, 5, 26, 0, 0, tzinfo=PARIS).astimezone(UTC).hour == 22
