"""Progress of a long run, in Prefect (a progress artifact) and on the console (log lines).

Stages move the bar in fixed steps; the transform stage moves it object by object, since
that is where a night's time goes. Outside a Prefect run only the log lines are written.
"""

from __future__ import annotations

import sys
import threading
from datetime import datetime

# Share of the bar each stage ends at; the transform stage fills the gap before its end.
STAGE_END = {"prepare": 5.0, "windows": 25.0, "transform": 85.0, "publish": 95.0, "report": 100.0}


class RunProgress:
    def __init__(self, run_label: str):
        self._lock = threading.Lock()
        self._artifact_id = None
        self._label = run_label
        try:
            from prefect.artifacts import create_progress_artifact
            from prefect.context import get_run_context

            get_run_context()
            key = "run-progress-" + "".join(ch if ch.isalnum() else "-" for ch in run_label.lower())
            self._artifact_id = create_progress_artifact(0.0, key=key[:100],
                                                         description=f"velibcast run {run_label}")
        except Exception:  # not inside a Prefect run: console lines only
            self._artifact_id = None

    def _set(self, percent: float, message: str) -> None:
        # stderr, not a Prefect logger: the transform reports from the runtime's own threads,
        # which carry no Prefect run context.
        print(f"{datetime.now():%H:%M:%S} progress {self._label}: {percent:3.0f}% {message}", file=sys.stderr, flush=True)
        if self._artifact_id is None:
            return
        from prefect.artifacts import update_progress_artifact

        with self._lock:
            update_progress_artifact(self._artifact_id, round(percent, 1))

    def stage_done(self, stage: str) -> None:
        self._set(STAGE_END[stage], f"{stage} done")

    def transform_objects(self, ended: int, total: int) -> None:
        lo, hi = STAGE_END["windows"], STAGE_END["transform"]
        self._set(lo + (hi - lo) * ended / max(1, total), f"transform: {ended}/{total} input objects done")
