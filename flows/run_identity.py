"""What identifies a run: the origins it forecasts, the config hash and the model version.

Rerunning the same thing gives the same run_id, hence the same transform job name
(batch_transform.attempts.job_name_for), which is what makes a rerun resume or reuse its
work instead of starting a second, billed job.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from velibcast.errors import ConfigError
from velibcast.timeutil import PARIS, compact_hour


def yesterday_in_paris(now: datetime | None = None) -> date:
    now = now or datetime.now(PARIS)
    return (now.astimezone(PARIS) - timedelta(days=1)).date()


@dataclass(frozen=True)
class RunSpec:
    run_date: date                 # the partition the forecasts are published under
    start: datetime | None = None  # an explicit origin range (UTC) instead of a whole local day
    end: datetime | None = None
    product: str = "evaluation"    # flows/products.py
    as_of: datetime | None = None  # a day-ahead or nowcast run reads no capture taken after it

    def __post_init__(self) -> None:
        if (self.start is None) != (self.end is None):
            raise ConfigError(f"an origin range needs both its start and its end (got {self.start} .. {self.end})")

    @property
    def label(self) -> str:
        if self.as_of is not None and self.start is not None:  # one origin, found from the as-of time
            return f"{self.product}-{compact_hour(self.start)}"
        if self.start is None or self.end is None:  # a whole day (both or neither: __post_init__)
            return self.run_date.isoformat()
        return f"{compact_hour(self.start)}-{compact_hour(self.end)}"


def run_id_for(spec: RunSpec, config_hash: str, model_version: str) -> str:
    rid = f"{spec.label}_{config_hash}_{model_version}"
    if not re.fullmatch(r"[A-Za-z0-9._-]+", rid):
        raise ConfigError(f"run id {rid!r} has characters unsafe in object keys; check the model version")
    return rid
