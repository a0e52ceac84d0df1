"""Argument types shared by every stage's subcommands.

Every range on the command line is half-open, [start, end): the start is included and the
end is not (RANGE_CONVENTION is quoted in each --help that takes a range).
"""

from __future__ import annotations

import argparse
from datetime import date, datetime

from velibcast.errors import ConfigError
from velibcast.timeutil import UTC, iso_minute

RANGE_CONVENTION = "ranges are half-open [start, end): the start is included, the end is not"


def utc_time(text: str) -> datetime:
    """An ISO time with a zone (`2022-05-26T00:00Z`), as UTC; a naive time is refused."""
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO time; write it like 2022-05-26T06:00Z or 2022-05-26T08:00+02:00") from None
    if t.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no time zone; write it like 2022-05-26T00:00Z")
    return t.astimezone(UTC)


def iso_date(text: str) -> date:
    """A calendar day, YYYY-MM-DD (a Europe/Paris day wherever velibcast takes a date)."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date; write it as YYYY-MM-DD, e.g. 2022-05-26") from None


def check_range(start: datetime, end: datetime, start_name: str = "--start", end_name: str = "--end") -> None:
    """A range holds at least its start: an empty or reversed one is a ConfigError before any work."""
    if end <= start:
        raise ConfigError(f"{end_name} {iso_minute(end)} must be after {start_name} {iso_minute(start)} "
                          f"({RANGE_CONVENTION})")
