"""Run a night's transform job on the configured backend, idempotently.

Both backends take the same CreateTransformJob spec and go through
attempts.run_idempotent: a rerun re-attaches to the run's job in progress, reuses a
completed one, and starts the next attempt only after a failure, so a retried night never
starts a second billed job for work already done or under way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from velibcast import constants as C
from velibcast.batch_transform.attempts import job_name_for, run_idempotent
from velibcast.batch_transform.local import LocalRuntime
from velibcast.batch_transform.sagemaker_backend import SageMakerBackend
from velibcast.run_records import TransformRecord


def _backend(ctx, progress=None):
    if ctx.cfg.transform.backend == "local":
        # Job state under <root>/transform-jobs/; a run attached to another's job waits at most the deadline.
        return LocalRuntime(ctx.storage, ctx.root, progress=progress, wait_deadline_s=ctx.cfg.transform.wait_deadline_s)

    return SageMakerBackend.from_config(ctx.cfg)


@contextmanager
def transform_backend(ctx, progress=None, servers: tuple[str, dict] | None = None) -> Iterator:
    """The night's transform backend. `progress(ended, total)` hears about each input object as
    it ends (local runtime; SageMaker reports status changes). With `servers` (a model name and
    the spec fields that shape its servers), the local runtime starts the job's model servers at
    once, so they load while the windows are written (LocalRuntime.start_servers); any the job
    did not take are stopped on the way out."""
    backend = _backend(ctx, progress)
    try:
        if servers is not None and isinstance(backend, LocalRuntime):
            model_name, spec = servers
            backend.create_model(model_name, ctx.model_uri)
            backend.start_servers(model_name, spec)
        yield backend
    finally:
        if isinstance(backend, LocalRuntime):
            backend.close()


def run_transform_job(backend, ctx, spec_for: Callable[[str], dict], model_name: str,
                      input_digest: str) -> TransformRecord:
    """The transform stage's result: the attempt that completed, as a checked TransformRecord.

    The job's identity includes the digests of its input shards and of the model artifact: a
    rerun whose inputs changed (corrected snapshots, `--force`) or whose model.tar.gz is another
    one under the same version gets a job of its own instead of the old predictions, and a rerun
    with the same inputs and model still re-attaches to or reuses its job."""
    backend.create_model(model_name, ctx.model_uri)
    base = job_name_for({"app": C.JOB_NAME_PREFIX, "run": ctx.run_id, "inputs": input_digest[:16],
                         "model": ctx.model_digest[:16]})
    d = run_idempotent(backend, spec_for, base, restart_stopped=ctx.force)
    return TransformRecord(job_spec=spec_for(d["TransformJobName"]), describe=d, backend=ctx.cfg.transform.backend,
                           input_digest=input_digest, model_digest=ctx.model_digest)

