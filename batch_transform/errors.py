"""The Batch Transform engine's errors, beside the engine (as moto keeps each service's).

All are in velibcast's hierarchy (velibcast/errors.py): `transient` says whether a retry may
help, `status` is the HTTP status where one was answered. The service's error codes
(ResourceInUse, ResourceNotFound, ValidationException) are carried as `code`.
The job spec's and JSONPath's errors stay with their validators (spec.SpecError,
jsonpath.JsonPathError): both are TerminalError too.
"""

from __future__ import annotations

from velibcast.errors import TerminalError, TransientError, VelibcastError


class TransformJobFailed(TerminalError):
    """The job ended Failed or Stopped; carries its FailureReason and where its logs are."""

    def __init__(self, name: str, status: str, reason: str, logs: str):
        self.name, self.status, self.reason, self.logs = name, status, reason, logs
        super().__init__(f"transform job {name} ended {status}: {reason or 'no FailureReason'}; logs: {logs}")


class TransformJobTimeout(TransientError):
    """Still running at the caller's wait deadline; a retry re-attaches to the same job."""


class ResourceInUse(TerminalError):
    """A model or transform job with this name exists (the service's ResourceInUse)."""

    code = "ResourceInUse"


class ResourceNotFound(TerminalError):
    """No model or transform job of that name (the service's ResourceNotFound)."""

    code = "ResourceNotFound"


class StopRequested(VelibcastError):
    """StopTransformJob was called: the job's workers unwind (not an error of the job)."""


class ContainerError(TerminalError):
    """The model server did not start or answer /ping. `detail` is the end of its log."""

    def __init__(self, message: str, detail: str = ""):
        super().__init__(message)
        self.detail = detail


class InvocationFailed(VelibcastError):
    """/invocations failed after retries. `status` is the HTTP status, None for no answer
    (a timeout or a lost connection, which a later attempt may not meet: transient, as a 5xx)."""

    def __init__(self, status: int | None, body: str):
        self.status = status
        self.body = body
        self.transient = status is None or status >= 500
        super().__init__(f"HTTP {status}: {body[:200]}" if status else body)


class ApiError(TerminalError):
    """An error answer of the local SageMaker API: HTTP `status` with the service's code and message."""

    def __init__(self, code: str, message: str, status: int = 400):
        super().__init__(message)
        self.code, self.message, self.status = code, message, status
