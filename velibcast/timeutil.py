"""Time zones, durations and the text forms of times: one definition each.

Every timestamp inside velibcast is timezone-aware UTC; Europe/Paris is used only where a
person's day is meant (a run date, day types, the report's labels). Each text form below is
written by one function (and read back by its `parse_` twin where something reads it): the
formatters do not convert, they are given UTC times.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime  # UTC is re-exported: import it from here
from zoneinfo import ZoneInfo

from velibcast import constants as C

PARIS = ZoneInfo(C.LOCAL_TIMEZONE)

__all__ = ["PARIS", "UTC", "clock", "compact_day", "compact_hour", "day_label", "iso_millis", "iso_minute", "iso_second",
           "key_time", "key_time_us", "name_minute", "parse_iso_minute", "parse_key_time", "seconds_between"]

ISO_MINUTE = "%Y-%m-%dT%H:%MZ"       # origins, ranges, record ids: what the CLI accepts
ISO_SECOND = "%Y-%m-%dT%H:%M:%SZ"    # captures, job times, bench results
KEY_TIME = C.SNAPSHOT_KEY_TIME_FORMAT  # in object keys and file names: no ":" (S3 keys, Windows paths)
KEY_TIME_US = "%Y-%m-%dT%H-%M-%S.%fZ"  # attempt names: two attempts within a second stay distinct


def iso_minute(t: datetime) -> str:
    return t.strftime(ISO_MINUTE)


def parse_iso_minute(s: str) -> datetime:
    return datetime.strptime(s, ISO_MINUTE).replace(tzinfo=UTC)


def iso_second(t: datetime) -> str:
    return t.strftime(ISO_SECOND)


def iso_millis(t: datetime) -> str:
    """`2022-05-26T06:00:00.123Z`: log lines, as CloudWatch shows them."""
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def key_time(t: datetime) -> str:
    return t.strftime(KEY_TIME)


_KEY_TIME_RE = re.compile(r"([0-9]{4}-[0-9]{2}-[0-9]{2})T([0-9]{2})-([0-9]{2})-([0-9]{2})Z")  # KEY_TIME, digits fixed


def parse_key_time(s: str) -> datetime:
    """KEY_TIME -> aware UTC; ValueError if `s` is not one (fields zero-padded, as key_time writes them).

    By a pattern and fromisoformat, not strptime: a process's first strptime imports _strptime,
    locale and calendar (5.8 ms of a fresh nightly's window assembly), and each call is ~10x slower.
    """
    m = _KEY_TIME_RE.fullmatch(s)
    if not m:
        raise ValueError(f"{s!r} is not a key time ({KEY_TIME})")
    return datetime.fromisoformat(f"{m[1]}T{m[2]}:{m[3]}:{m[4]}+00:00")


def key_time_us(t: datetime) -> str:
    return t.strftime(KEY_TIME_US)


def name_minute(t: datetime) -> str:
    """`2022-05-26T0600Z`: Prefect flow-run names (no ':')."""
    return t.strftime("%Y-%m-%dT%H%MZ")


def compact_hour(t: datetime) -> str:
    """`20220526T06`: run-id labels of a range."""
    return t.strftime("%Y%m%dT%H")


def compact_day(t: datetime) -> str:
    """`20220526`: model versions."""
    return t.strftime("%Y%m%d")


def day_label(t: datetime) -> str:
    """`Thu 26 May 06:00`: the report's labels (give it a Europe/Paris time)."""
    return t.strftime("%a %d %b %H:%M")


def clock(t: datetime) -> str:
    """`06:00:00`: the console's progress lines (local wall time)."""
    return t.strftime("%H:%M:%S")


def seconds_between(start: datetime | str, end: datetime | str) -> float:
    """Seconds from `start` to `end` (datetimes or ISO 8601 strings, as DescribeTransformJob
    and our job state give them). Negative when `end` is before `start`: callers decide."""
    if isinstance(start, str):
        start = datetime.fromisoformat(start)
    if isinstance(end, str):
        end = datetime.fromisoformat(end)
    return (end - start).total_seconds()
