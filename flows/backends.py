"""Run one transform job on the configured backend, idempotently.

Both backends take the same CreateTransformJob spec. A rerun finds the run's earlier
attempts by their deterministic names: it re-attaches to one in progress, reuses one that
completed, and starts the next attempt (`-rN`) only after a Failed or Stopped one; it
never starts a second billed job for work already done or under way.
"""

from __future__ import annotations

from typing import Callable

from velibcast import constants as C
from velibcast import storage as st
from velibcast.errors import TerminalError
from velibcast.flows.run_identity import job_name_for


def _backend(ctx):
    kind = ctx.cfg["transform"]["backend"]
    if kind == "local":
        from velibcast.batch_transform.local import LocalRuntime

        return LocalRuntime(ctx.storage, ctx.root)  # job state under <root>/transform-jobs/
    from velibcast.batch_transform.sagemaker_backend import SageMakerBackend

    return SageMakerBackend.from_config(ctx.cfg)


def _describe_or_none(backend, name: str) -> dict | None:
    try:
        return backend.describe_transform_job(name)
    except Exception as e:  # both backends raise a not-found error of their own type
        if "not found" in str(e).lower() or "does not exist" in str(e).lower() or getattr(e, "code", "") in ("ValidationException", "ResourceNotFound"):
            return None
        raise


def run_transform(ctx, spec_for: Callable[[str], dict], model_name: str) -> tuple[dict, dict]:
    backend = _backend(ctx)
    backend.create_model(model_name, ctx.model_uri)
    for attempt in range(C.MAX_JOB_ATTEMPTS):
        name = job_name_for(ctx.run_id, attempt)
        spec = spec_for(name)
        d = _describe_or_none(backend, name)
        if d is None:
            return spec, backend.create_transform_job(spec)
        status = d["TransformJobStatus"]
        if status == "Completed":
            return spec, d
        if status in ("InProgress", "Stopping"):
            wait = getattr(backend, "wait", None)
            if wait is not None:
                return spec, wait(name)
            continue  # a local job whose process died cannot be re-attached; start the next attempt
        # Failed / Stopped: the next attempt gets a fresh name
    raise TerminalError(f"run {ctx.run_id}: {C.MAX_JOB_ATTEMPTS} transform attempts failed; "
                        "see their FailureReason with `velibcast transform-job describe NAME`")
