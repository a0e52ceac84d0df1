"""Handler errors that carry their HTTP status.

Inside AWS's PyTorch container the sagemaker-inference toolkit turns a
BaseInferenceToolkitError into a response with its `status_code`, and anything else into a
500. Subclassing it there keeps a bad record a 4xx on AWS too. Elsewhere (our server, unit
tests without the toolkit) a local base with the same attributes stands in.
"""

try:
    from sagemaker_inference.errors import BaseInferenceToolkitError as _Base
except ImportError:

    class _Base(Exception):
        def __init__(self, status_code, message, phrase):
            self.status_code = status_code
            self.message = message
            self.phrase = phrase
            super().__init__(status_code, message, phrase)


class InferenceError(_Base):
    """`status_code` is the HTTP status; `message` names the line and field and the fix."""

    status = 500
    reason = "Internal Server Error"

    def __init__(self, message: str):
        super().__init__(self.status, message, self.reason)

    def __str__(self) -> str:
        return self.message


class BadRequest(InferenceError):
    status = 400
    reason = "Bad Request"


class UnsupportedContentType(InferenceError):
    status = 415
    reason = "Unsupported Media Type"


class NotAcceptable(InferenceError):
    status = 406
    reason = "Not Acceptable"


class ModelLoadError(InferenceError):
    """The model directory is incomplete or does not match this code: a server fault."""
