"""Time zones and durations: one definition each.

Every timestamp inside velibcast is timezone-aware UTC; Europe/Paris is used only where a
person's day is meant (a run date, day types, the report's labels).
"""

from __future__ import annotations

from datetime import UTC, datetime  # UTC is re-exported: import it from here
from zoneinfo import ZoneInfo

from velibcast import constants as C

PARIS = ZoneInfo(C.LOCAL_TIMEZONE)

__all__ = ["PARIS", "UTC", "seconds_between"]


def seconds_between(start: datetime | str, end: datetime | str) -> float:
    """Seconds from `start` to `end` (datetimes or ISO 8601 strings, as DescribeTransformJob
    and our job state give them). Negative when `end` is before `start`: callers decide."""
    if isinstance(start, str):
        start = datetime.fromisoformat(start)
    if isinstance(end, str):
        end = datetime.fromisoformat(end)
    return (end - start).total_seconds()
