"""Where every bench saves its figures: bench/results/<bench>-<UTC time>.json, stamped with that time.

Imported by the bench scripts as a sibling module (a script's own folder is the first entry of
sys.path); it is not test code and imports nothing of the tests.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from velibcast.timeutil import UTC, iso_second, key_time

RESULTS = Path(__file__).resolve().parent / "results"


def save(bench: str, results: dict, when: datetime | None = None) -> Path:
    """Write `results` with a "when" (UTC) as JSON; prints and returns the file's path."""
    when = when or datetime.now(UTC)
    out = RESULTS / f"{bench}-{key_time(when)}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"when": iso_second(when), **results}, indent=2))
    print(f"saved {out}")
    return out
