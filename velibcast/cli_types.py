"""Argument types shared by every stage's subcommands."""

from __future__ import annotations

import argparse
from datetime import datetime, timezone


def utc_time(text: str) -> datetime:
    """An ISO time with a zone (`2022-05-26T00:00Z`), as UTC; a naive time is refused."""
    t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if t.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no time zone; write it like 2022-05-26T00:00Z")
    return t.astimezone(timezone.utc)
