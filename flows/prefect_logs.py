"""The runtime's own log lines (`[sagemaker logs]`, attempts, SageMaker polling) in the Prefect run's log.

The local Batch Transform runtime logs from its worker threads through the standard
`velibcast.*` loggers; those threads carry no Prefect run context, so the lines are handed
to the run logger captured in the task, which knows its flow and task run ids.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager


class _ToRunLogger(logging.Handler):
    def __init__(self, run_logger):
        super().__init__(logging.INFO)
        self.run_logger = run_logger

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.run_logger.log(record.levelno, "%s: %s", record.name, record.getMessage())
        except Exception:
            self.handleError(record)


@contextmanager
def forwarded_to(run_logger, logger_name: str = "velibcast"):
    """While inside, INFO and above of `logger_name` also go to `run_logger` (a Prefect run logger)."""
    source = logging.getLogger(logger_name)
    handler = _ToRunLogger(run_logger)
    old_level = source.level
    source.addHandler(handler)
    if source.getEffectiveLevel() > logging.INFO:
        source.setLevel(logging.INFO)
    try:
        yield
    finally:
        source.removeHandler(handler)
        source.setLevel(old_level)
