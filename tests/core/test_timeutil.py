import re
from datetime import datetime, timedelta
from pathlib import Path

from velibcast.timeutil import (
    PARIS,
    UTC,
    clock,
    compact_day,
    compact_hour,
    day_label,
    iso_millis,
    iso_minute,
    iso_second,
    key_time,
    key_time_us,
    name_minute,
    parse_iso_minute,
    parse_key_time,
    seconds_between,
)


def test_seconds_between_takes_datetimes_and_iso_strings_and_keeps_the_sign():
    t = datetime(2022, 5, 26, 2, 30, tzinfo=UTC)
    assert seconds_between(t, t + timedelta(seconds=95.5)) == 95.5
    assert seconds_between(t.isoformat(), (t + timedelta(minutes=2)).isoformat()) == 120.0
    assert seconds_between(t + timedelta(seconds=1), t) == -1.0


def test_paris_is_utc_plus_two_in_summer():
    assert datetime(2022, 5, 26, 0, 0, tzinfo=PARIS).astimezone(UTC).hour == 22


def test_each_text_form_of_a_time_and_its_parser_round_trip():
    t = datetime(2022, 5, 26, 6, 5, 7, 123456, tzinfo=UTC)
    assert iso_minute(t) == "2022-05-26T06:05Z" and parse_iso_minute("2022-05-26T06:05Z") == t.replace(second=0,
                                                                                                     microsecond=0)
    assert iso_second(t) == "2022-05-26T06:05:07Z"
    assert iso_millis(t) == "2022-05-26T06:05:07.123Z"
    assert key_time(t) == "2022-05-26T06-05-07Z" and parse_key_time(key_time(t)) == t.replace(microsecond=0)
    assert key_time_us(t) == "2022-05-26T06-05-07.123456Z"
    assert name_minute(t) == "2022-05-26T0605Z" and compact_hour(t) == "20220526T06" and compact_day(t) == "20220526"
    assert clock(t) == "06:05:07" and day_label(t) == "Thu 26 May 06:05"


def test_no_inline_time_format_outside_timeutil():
    """Every strftime/strptime pattern lives in timeutil (a test generating raw inputs is the exception)."""
    root = Path(__file__).resolve().parents[2]
    pattern = re.compile(r"strftime\(\s*[\"']|strptime\([^)]*[\"']%|\{[^{}]*:%[YmdHMS]")
    files = [p for d in ("velibcast", "flows", "datasets", "batch_transform", "training", "bench", "tests")
             for p in (root / d).rglob("*.py") if p.name not in ("timeutil.py", "test_ds_parse_parity.py",
                                                                   "test_timeutil.py")]
    assert len(files) > 50
    found = [f"{p.relative_to(root)}:{n}" for p in files
             for n, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert found == []
