"""Error types shared by every stage.

Recoverability is told by type, as dlt does: a caller (a Prefect retry condition, the
SageMaker poller) retries a TransientError and gives up at once on a TerminalError.
Every message names the object, line, station or field at fault and what to do.
"""


class VelibcastError(Exception):
    """Root of the project's exceptions. `transient` says whether retrying may help."""

    transient: bool = False


class TerminalError(VelibcastError):
    """Retrying will not help: bad input, bad config, a missing model."""


class TransientError(VelibcastError):
    """Retrying may help: throttling, a 5xx, a timeout, a lost connection."""

    transient = True


class ConfigError(TerminalError):
    """A configuration value is missing or out of range."""


class DataError(TerminalError):
    """Input data is malformed. `where` names the object and line (or station)."""

    def __init__(self, where: str, problem: str, fix: str = ""):
        self.where = where
        self.problem = problem
        self.fix = fix
        msg = f"{where}: {problem}"
        if fix:
            msg += f" ({fix})"
        super().__init__(msg)


class StorageError(VelibcastError):
    """An object store operation failed for a reason other than transient errors.
    `status` is the store's HTTP status when it answered one."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class TransientStorageError(StorageError, TransientError):
    """An object store operation failed and may succeed if retried."""


class NotFound(StorageError, TerminalError):
    """The object does not exist."""


class AccessDenied(StorageError, TerminalError):
    """The store refused the credentials (HTTP 403). Never read as "does not exist": S3 answers
    403 for a missing key when s3:ListBucket is not granted, so a 403 cannot tell the two apart."""


def is_transient(exc: BaseException) -> bool:
    """Whether retrying may help: the error's own `transient` (an InvocationFailed decides by its status)."""
    return isinstance(exc, VelibcastError) and exc.transient
