"""How Prefect retries and times out the stages: from the error taxonomy and the config.

A stage that fails with a TransientError (throttling, a 5xx, a lost connection: see
velibcast/errors.py) is retried by Prefect; a TerminalError (bad input, bad config) fails
at once, since retrying cannot help and would only delay the message. Each stage resumes
from its own records in the store, so a retry redoes only what was not finished.
"""

from __future__ import annotations

from typing import Any

from prefect.cache_policies import NO_CACHE

from velibcast import constants as C
from velibcast.errors import is_transient


def retry_if_transient(task, task_run, state) -> bool:
    """Prefect's retry_condition_fn: retry only what the error taxonomy calls transient."""
    try:
        exc = state.result(raise_on_failure=False)
    except Exception as e:  # the result could not be read back: judge by that error
        exc = e
    return isinstance(exc, BaseException) and is_transient(exc)


RETRY_OPTS = dict(retries=C.STAGE_RETRIES, retry_delay_seconds=list(C.STAGE_RETRY_DELAYS_S),
                  retry_condition_fn=retry_if_transient)
# A stage's task: retried as above, never cached nor its result persisted by Prefect (each stage
# keeps its own records in the store).
TASK_OPTS: dict[str, Any] = dict(cache_policy=NO_CACHE, persist_result=False, **RETRY_OPTS)


def timed(task, cfg, stage: str):
    """The task with the stage's timeout from the config (`run.timeouts_s.<stage>`)."""
    return task.with_options(timeout_seconds=cfg.run.timeouts_s.seconds(stage))
