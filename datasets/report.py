"""Counting what the datasets stage rejects, flags or skips, and the policy that decides.

Every reason belongs to one kind, so the manifest can say "records rejected" apart from
"windows skipped" without parsing names. A reason missing from the table is a bug.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from velibcast import constants as C
from velibcast.errors import ConfigError, DataError

# kind of each reason: what happened to the thing counted
REJECTED_RECORD = "records_rejected"
REJECTED_OBJECT = "objects_rejected"
FLAGGED = "flagged"              # counted, data kept unchanged
SKIPPED_WINDOW = "windows_skipped"
NOTE = "notes"                   # counted for the manifest, nothing was dropped

REASONS = {
    # per record (see docs/datasets.md, "Validation policy")
    "bad_json": REJECTED_RECORD,
    "bad_type": REJECTED_RECORD,
    "negative_count": REJECTED_RECORD,
    "missing_coords": REJECTED_RECORD,
    "bad_duedate": REJECTED_RECORD,
    "duplicate_station": REJECTED_RECORD,
    "bad_station_code": REJECTED_RECORD,
    "implausible_count": REJECTED_RECORD,
    "out_of_area": REJECTED_RECORD,
    "future_duedate": REJECTED_RECORD,
    "unknown_station_id": REJECTED_RECORD,
    "over_capacity": FLAGGED,
    # per object
    "corrupt_gzip": REJECTED_OBJECT,
    "empty_object": REJECTED_OBJECT,
    "bad_key": REJECTED_OBJECT,
    "misfiled_key": REJECTED_OBJECT,
    "duplicate_snapshot": REJECTED_OBJECT,
    "partial_snapshot": FLAGGED,
    # per window
    "missing_at_origin": SKIPPED_WINDOW,
    "stale_at_origin": SKIPPED_WINDOW,
    "not_installed": SKIPPED_WINDOW,
    "not_renting": SKIPPED_WINDOW,
    "missing_station": SKIPPED_WINDOW,
    "target_not_observed": SKIPPED_WINDOW,  # training/backtest samples: see datasets.observed
    "target_is_origin_record": SKIPPED_WINDOW,  # the same, news_since_origin
    "unknown_station": NOTE,
    "filled_history": NOTE,   # windows sent with some hours of t-23h..t-1 carried from a neighbouring hour
    "filled_hours": NOTE,     # the hours so carried, over those windows
}

_POLICY_CHOICES = ("skip", "fail")


@dataclass(frozen=True)
class ValidationPolicy:
    """What to do with a bad record or object: skip and count it, or fail the run.

    "fail" raises DataError naming the object and line. Flagged reasons never fail:
    the data is kept as it is and only counted.
    """

    on_bad_record: str = "skip"
    on_bad_object: str = "skip"

    @classmethod
    def from_config(cls, cfg) -> ValidationPolicy:
        """The policy a config's `snapshots` section names (one place for every stage that reads snapshots)."""
        return cls(on_bad_record=cfg.snapshots.on_bad_record, on_bad_object=cfg.snapshots.on_bad_object)

    def __post_init__(self):
        for name in ("on_bad_record", "on_bad_object"):
            if getattr(self, name) not in _POLICY_CHOICES:
                raise ConfigError(
                    f"ValidationPolicy.{name}={getattr(self, name)!r}: use one of {_POLICY_CHOICES}"
                )

    @classmethod
    def from_dict(cls, d: dict | None) -> ValidationPolicy:
        return cls(**dict(d or {}))


@dataclass
class SkipReport:
    """Counts by reason, plus the first few examples of each, for the manifest."""

    max_examples: int = C.REPORT_MAX_EXAMPLES
    counts: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def add(self, reason: str, where: str, detail: str = "", n: int = 1) -> None:
        if reason not in REASONS:
            raise KeyError(f"unknown report reason {reason!r}; add it to datasets.report.REASONS")
        self.counts[reason] = self.counts.get(reason, 0) + n
        ex = self.examples.setdefault(reason, [])
        if len(ex) < self.max_examples:
            ex.append(f"{where}: {detail}" if detail else where)

    def reject(self, policy: ValidationPolicy, reason: str, where: str, detail: str, fix: str = "") -> None:
        """Count a rejected record or object, or raise if the policy says fail."""
        kind = REASONS[reason]
        mode = policy.on_bad_object if kind == REJECTED_OBJECT else policy.on_bad_record
        if mode == "fail" and kind in (REJECTED_RECORD, REJECTED_OBJECT):
            raise DataError(where, f"{reason}: {detail}", fix or _FIXES.get(reason, ""))
        self.add(reason, where, detail)

    def total(self, kind: str) -> int:
        return sum(n for r, n in self.counts.items() if REASONS[r] == kind)

    def to_dict(self) -> dict:
        by_kind: dict[str, dict[str, int]] = {}
        for reason in sorted(self.counts):
            by_kind.setdefault(REASONS[reason], {})[reason] = self.counts[reason]
        return {
            "counts": dict(sorted(self.counts.items())),
            "by_kind": by_kind,
            "examples": {r: list(v) for r, v in sorted(self.examples.items())},
        }


_FIXES = {
    "bad_json": "repair or delete the line, or run with on_bad_record=skip",
    "bad_type": "re-import the snapshot with `velibcast snapshots import`",
    "negative_count": "the source published a negative count; skip it with on_bad_record=skip",
    "missing_coords": "the station has no coordinates; skip it with on_bad_record=skip",
    "bad_duedate": "duedate must be ISO-8601 with an offset, e.g. 2022-05-23T00:57:18+02:00",
    "duplicate_station": "a snapshot must hold each station once",
    "bad_station_code": f"station codes must match {C.STATION_CODE_PATTERN}; fix the importer or skip the record",
    "implausible_count": (f"capacity must be <= {C.STATION_CAPACITY_MAX} and counts <= {C.STATION_COUNT_MAX} "
                          "(velibcast/constants.py); skip the record with on_bad_record=skip"),
    "out_of_area": (f"lat/lon must lie in the service area {C.SERVICE_AREA_LAT} x {C.SERVICE_AREA_LON} "
                    "(velibcast/constants.py); skip the record with on_bad_record=skip"),
    "future_duedate": "the source's clock is ahead of the capture; skip the record with on_bad_record=skip",
    "bad_key": "snapshot keys are <YYYY-MM-DDTHH-MM-SSZ>.jsonl.gz or date=<UTC date>/<same>; rename or move the object",
    "misfiled_key": "move the object to the date=<its capture's UTC date>/ folder",
    "corrupt_gzip": "re-upload the object, or run with on_bad_object=skip",
    "empty_object": "delete the empty object, or run with on_bad_object=skip",
}
