"""Create-or-attach: how a retried run finds, reuses or replaces its transform jobs.

Both backends go through `run_idempotent`, so a rerun behaves the same locally and on
SageMaker. Job names are deterministic (job_name_for), so a retry describes before it
creates: an InProgress job is re-attached, a Completed one reused, and only after a
Failed attempt is a new one started, named `<name>-rN`. A Stopped job is not retried:
someone stopped it on purpose. Airflow's operator starts a new billed job on every retry
and MLflow refuses an existing name; neither is what a nightly rerun needs.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable
from typing import Protocol

from velibcast import constants as C
from velibcast.batch_transform.errors import TransformJobFailed
from velibcast.errors import TerminalError

log = logging.getLogger("velibcast.attempts")


class Backend(Protocol):
    def find_transform_job(self, name: str) -> dict | None: ...
    def submit_transform_job(self, spec: dict) -> None: ...
    def describe_transform_job(self, name: str) -> dict: ...
    def wait(self, name: str) -> dict: ...
    def logs_location(self, name: str) -> str: ...


def job_name_for(parts: dict) -> str:
    """A deterministic, valid job name from a run's parameters: readable head + hash.

    Same parts -> same name (so a retry finds its job); different parts -> different names.
    The hash covers the sorted parts; the readable head joins the values in the caller's order.
    At most 63 characters, matching [a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}, with room for `-rN`.
    """
    canonical = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    digest = hashlib.sha256(canonical.encode()).hexdigest()[:12]
    head = "-".join(re.sub(r"[^a-zA-Z0-9]+", "-", str(v)).strip("-") for v in parts.values() if str(v))
    head = re.sub(r"-+", "-", head).strip("-")
    room = C.JOB_NAME_MAX_LEN - len(digest) - 1 - len("-r9")
    head = head[:room].rstrip("-")
    return f"{head}-{digest}" if head else f"job-{digest}"


def attempt_name(base: str, attempt: int) -> str:
    if attempt == 0:
        return base
    suffix = f"-r{attempt}"
    return base[: C.JOB_NAME_MAX_LEN - len(suffix)].rstrip("-") + suffix


def run_idempotent(backend: Backend, spec_for: Callable[[str], dict], base: str, wait: bool = True,
                   restart_stopped: bool = False) -> dict:
    """Run (or re-attach to, or reuse) the job for `base`; the final describe dict.

    `spec_for(name)` builds the job spec for an attempt's name, so that each attempt may
    write to its own output path. Raises TransformJobFailed when the job ends Failed or
    Stopped; a later call then starts the next attempt (after Stopped only when
    `restart_stopped`, which `--force` sets).
    """
    for attempt in range(C.MAX_JOB_ATTEMPTS):
        name = attempt_name(base, attempt)
        d = backend.find_transform_job(name)
        if d is None:
            backend.submit_transform_job(spec_for(name))
            log.info("created transform job %s", name)
        elif d["TransformJobStatus"] in ("InProgress", "Stopping"):
            log.info("re-attaching to transform job %s (%s)", name, d["TransformJobStatus"])
        elif d["TransformJobStatus"] == "Completed":
            log.info("reusing completed transform job %s", name)
            return d
        elif d["TransformJobStatus"] == "Stopped" and not restart_stopped:
            raise TransformJobFailed(name, "Stopped", "stopped by a user; it is not restarted automatically "
                                     "(rerun with --force to start the next attempt)", backend.logs_location(name))
        else:
            log.warning("transform job %s ended %s (%s); next attempt", name, d["TransformJobStatus"],
                        d.get("FailureReason"))
            continue
        if not wait:
            return backend.describe_transform_job(name)
        d = backend.wait(name)
        if d["TransformJobStatus"] != "Completed":
            raise TransformJobFailed(name, d["TransformJobStatus"], d.get("FailureReason", ""),
                                     backend.logs_location(name))
        return d
    raise TerminalError(f"transform job {base}: {C.MAX_JOB_ATTEMPTS} attempts failed; see the FailureReason "
                        f"of {attempt_name(base, C.MAX_JOB_ATTEMPTS - 1)} and fix the cause before rerunning")
