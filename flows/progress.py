"""Progress of a long run, in Prefect (a progress artifact) and on the console (log lines).

Stages move the bar in fixed steps; the transform stage moves it object by object, since
that is where a night's time goes. Outside a Prefect run only the log lines are written.
"""

from __future__ import annotations

import sys
import threading
from datetime import datetime

from velibcast.flows.run_artifacts import artifact_key
from velibcast.timeutil import clock

# Share of the bar each stage ends at; the transform stage fills the gap before its end.
STAGE_END = {"prepare": 5.0, "windows": 25.0, "transform": 85.0, "publish": 95.0, "report": 100.0}


class RunProgress:
    def __init__(self, run_label: str):
        self._lock = threading.Lock()
        self._artifact_id = None
        self._logger = None
        self._label = run_label
        try:
            from prefect import get_run_logger  # lazy: Prefect in library code: console-only outside a Prefect run

            # lazy: Prefect in library code: console-only outside a Prefect run
            from prefect.artifacts import create_progress_artifact
            from prefect.context import get_run_context

            get_run_context()
            # The run logger carries its run's id, so lines sent from the runtime's worker threads
            # (which have no Prefect context) still land in this run's log, and on the console.
            self._logger = get_run_logger()
            self._artifact_id = create_progress_artifact(0.0, key=artifact_key("run-progress", run_label),
                                                         description=f"velibcast run {run_label}")
        except Exception:  # not inside a Prefect run: console lines only
            self._artifact_id = self._logger = None

    def _set(self, percent: float, message: str) -> None:
        line = f"progress {self._label}: {percent:3.0f}% {message}"
        if self._logger is None:
            print(f"{clock(datetime.now())} {line}", file=sys.stderr, flush=True)
        else:
            self._logger.info(line)
        if self._artifact_id is None:
            return
        # lazy: Prefect in library code: console-only outside a Prefect run
        from prefect.artifacts import update_progress_artifact

        with self._lock:
            # Prefect's stubs type the sync_compatible result as UUID | Coroutine; a sync caller gets the UUID.
            update_progress_artifact(self._artifact_id, round(percent, 1))  # type: ignore[arg-type]

    def stage_done(self, stage: str) -> None:
        self._set(STAGE_END[stage], f"{stage} done")

    def transform_objects(self, ended: int, total: int) -> None:
        lo, hi = STAGE_END["windows"], STAGE_END["transform"]
        self._set(lo + (hi - lo) * ended / max(1, total), f"transform: {ended}/{total} input objects done")
