"""The runtime's own log lines (`[sagemaker logs]`, attempts, SageMaker polling) in the Prefect run's log,
and a command's console without the tracebacks of a failed run.

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


class _WithoutTraceback(logging.Formatter):
    """`inner`'s lines without the exception's traceback: the record keeps it for the other handlers
    (the Prefect API's log shows it), only this handler's line leaves it out."""

    def __init__(self, inner: logging.Formatter | None):
        super().__init__()
        self.inner = inner or logging.Formatter()

    def format(self, record: logging.LogRecord) -> str:
        saved = record.exc_info, record.exc_text
        record.exc_info, record.exc_text = None, None
        try:
            return self.inner.format(record)
        finally:
            record.exc_info, record.exc_text = saved


def console_without_tracebacks() -> None:
    """Prefect's console lines leave out the traceback of a failed task or flow run: a command that
    fails ends with the error's own line (what, where, the fix), which a traceback printed above it
    buried. For a command's entry point, after Prefect is imported (its logging setup
    replaces the console handler); --debug leaves the tracebacks in."""
    from prefect.logging.handlers import PrefectConsoleHandler  # lazy: the caller imported Prefect already

    for handler in logging.getLogger().handlers:
        if isinstance(handler, PrefectConsoleHandler) and not isinstance(handler.formatter, _WithoutTraceback):
            handler.setFormatter(_WithoutTraceback(handler.formatter))
