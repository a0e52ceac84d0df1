"""Loading and driving a model's `code/inference.py` as AWS's PyTorch inference container
does (sagemaker-inference's Transformer): pre_model_fn, model_fn and model_warmup_fn once,
then transform_fn, or input_fn -> predict_fn -> output_fn per request. Hooks never see
HTTP; a failure carries its status. `load` runs pre_model_fn and model_fn; the server runs
`Handlers.warm_up` (model_warmup_fn) on the thread that will serve requests, as TorchServe's
worker runs the toolkit's initialisation in the thread that then serves.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from velibcast import constants as C

# One InferenceError: the model code's own (subclassing the inference toolkit's when installed),
# so a request the server refuses carries its status the same way a handler's refusal does.
from velibcast.transform_code.velib_errors import BadRequest, InferenceError, ModelLoadError

# sagemaker_inference.content_types.UTF8_TYPES: these bodies reach input_fn as str.
UTF8_TYPES = ("application/json", "text/csv")


def status_of(exc: BaseException) -> int:
    """An exception's own `status_code` when it is an HTTP error status, else 500."""
    code = getattr(exc, "status_code", None)
    return code if isinstance(code, int) and 400 <= code <= 599 else 500


@dataclass
class Handlers:
    module: object
    model: object
    default_accept: str
    model_dir: str

    def warm_up(self) -> None:
        """The toolkit's model_warmup_fn(model_dir, model), if the module has one: once, after
        model_fn, before the first request."""
        if hasattr(self.module, "model_warmup_fn"):
            _call(self.module.model_warmup_fn, self.model_dir, self.model)

    def invoke(self, body: bytes, content_type: str | None, accept: str | None) -> tuple[bytes, str]:
        """One request through the hooks; returns (response body, response content type)."""
        if not accept or accept == "*/*":
            accept = self.default_accept
        data: bytes | str = body
        if content_type in UTF8_TYPES:
            try:
                data = body.decode("utf-8")
            except UnicodeDecodeError as e:
                raise BadRequest(f"request body is not UTF-8 (byte {e.start}); "
                                 f"send UTF-8 text for {content_type}") from e
        m = self.module
        if hasattr(m, "transform_fn"):
            result = _call(m.transform_fn, self.model, data, content_type, accept)
        else:
            try:
                decoded = _call(self._hook("input_fn"), data, content_type)
            except RecursionError as e:  # decoding deeply nested JSON: the request's fault, and a 500 would be retried
                raise BadRequest(f"the {content_type} body is nested too deeply to decode; "
                                 "send flat records") from e
            prediction = _call(self._hook("predict_fn"), decoded, self.model)
            result = _call(self._hook("output_fn"), prediction, accept)
        response_type = accept
        if isinstance(result, tuple):
            result, response_type = result[0], result[1]
        if isinstance(result, str):
            result = result.encode("utf-8")
        elif not isinstance(result, (bytes, bytearray)):
            result = bytes(result)
        return bytes(result), response_type

    def _hook(self, name: str):
        fn = getattr(self.module, name, None)
        if fn is not None:
            return fn
        return getattr(_default_handler(), f"default_{name}")


def _call(fn, *args):
    # The toolkit passes an extra `context` argument to hooks that take one more parameter.
    n = len(inspect.signature(fn).parameters)
    return fn(*args, None) if n == len(args) + 1 else fn(*args)


_DEFAULT = None


def _default_handler():
    """AWS's own PyTorch defaults for hooks a module leaves out (installed with the
    sagemaker-pytorch-inference package, as in the AWS container)."""
    global _DEFAULT
    if _DEFAULT is None:
        try:  # lazy: the toolkit is optional (a test dependency), needed only by a module without its own hooks
            from sagemaker_pytorch_serving_container.default_pytorch_inference_handler import (
                DefaultPytorchInferenceHandler,
            )
        except ImportError as e:
            raise InferenceError("inference.py leaves out a hook and sagemaker-pytorch-inference is not "
                                 "installed; define input_fn, predict_fn and output_fn (or transform_fn)") from e
        _DEFAULT = DefaultPytorchInferenceHandler()
    return _DEFAULT


def load(model_dir: str | Path) -> Handlers:
    """Import `<model_dir>/code/<SAGEMAKER_PROGRAM>` with code/ on sys.path and run model_fn once;
    the caller runs `warm_up()` before the first request."""
    model_dir = Path(model_dir)
    code = model_dir / "code"
    program = os.environ.get(C.USER_PROGRAM_ENV, C.HANDLER_PROGRAM_DEFAULT)
    if not (code / program).is_file():
        raise ModelLoadError(f"{code / program}: no handler module; a model.tar.gz must hold code/{program}")
    sys.path.insert(0, str(code))
    module = importlib.import_module(Path(program).stem)
    has_split = any(hasattr(module, h) for h in ("input_fn", "predict_fn", "output_fn"))
    if hasattr(module, "transform_fn") and has_split:
        raise ModelLoadError(f"{code / program}: transform_fn cannot be combined with input_fn, predict_fn "
                         "or output_fn; keep one style")
    # The toolkit's optional hook before model_fn: pre_model_fn(model_dir), once.
    if hasattr(module, "pre_model_fn"):
        _call(module.pre_model_fn, str(model_dir))
    model_fn = getattr(module, "model_fn", None) or _default_handler().default_model_fn
    model = _call(model_fn, str(model_dir))
    accept = os.environ.get(C.DEFAULT_INVOCATIONS_ACCEPT_ENV, "application/json")
    return Handlers(module, model, accept, str(model_dir))
