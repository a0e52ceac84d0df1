"""The SageMaker backend: the same validated job spec, run on the real service with boto3.

Safe to retry from Prefect: run_transform_job goes through attempts.run_idempotent
(re-attach, reuse, or a new `-rN` attempt after a failure) with deterministic names.
Polling has its own deadline and backoff, since boto3's waiter gives up after an hour.
sagemaker-core is used only for the PyTorch inference image URI, chosen for the job's
instance type (a GPU instance gets the GPU image). Its resource classes were tried for
create/get/wait and kept out: `Model.get` rejects a DescribeModel answer with an empty
VpcConfig (moto's, 2 pydantic errors), `TransformJob.wait` sleeps on the wall clock at a
fixed interval and raises on Failed, and `create` needs the validated spec re-shaped into
its pydantic shapes; the attach/reuse loop and the deadline policy are ours anyway. They
do work against the local SageMaker API (test_bt_sagemaker_api.py). What passes locally must not fail on
AWS because of the PyTorch container's model server: a request over its 6,553,500-byte
cap is refused here, and its response timeout (60 s unless SAGEMAKER_MODEL_SERVER_TIMEOUT)
is set to the job's InvocationsTimeoutInSeconds.
"""

from __future__ import annotations

import logging
import time

from velibcast import constants as C
from velibcast.batch_transform.attempts import run_idempotent
from velibcast.batch_transform.errors import ResourceNotFound, TransformJobFailed, TransformJobTimeout
from velibcast.batch_transform.spec import SpecError, validate_job_spec
from velibcast.config import Config
from velibcast.errors import TerminalError, TransientError
from velibcast.retry import Backoff
from velibcast.timeutil import seconds_between

log = logging.getLogger("velibcast.sagemaker")

_THROTTLING = {"ThrottlingException", "Throttling", "TooManyRequestsException", "RequestLimitExceeded",
               "ServiceUnavailable", "InternalFailure", "InternalServerError"}


__all__ = ["SageMakerBackend", "TransformJobTimeout", "billed_seconds", "pytorch_image_uri"]


def billed_seconds(describe: dict) -> float:
    """Billed time per instance: TransformStartTime to TransformEndTime (BTS §5.1); never negative
    (clocks that disagree bill nothing), 0 for a job that has not started or ended."""
    start, end = describe.get("TransformStartTime"), describe.get("TransformEndTime")
    if not start or not end:
        return 0.0
    return max(0.0, seconds_between(start, end))


def pytorch_image_uri(region: str, instance_type: str = C.DEFAULT_INSTANCE_TYPE) -> str:
    from sagemaker.core import image_uris  # lazy: sagemaker-core (~1 s) only to look up an image URI

    return image_uris.retrieve("pytorch", region=region, version=C.PYTORCH_INFERENCE_VERSION,
                               py_version=C.PYTORCH_INFERENCE_PY_VERSION, instance_type=instance_type,
                               image_scope="inference")


class SageMakerBackend:
    """The same surface as LocalRuntime (create_model, create_transform_job, describe_transform_job,
    wait) plus run_transform_job, the create-or-attach loop for callers without their own."""

    def __init__(self, client=None, region: str | None = None, *, role_arn: str | None = None,
                 image_uri: str | None = None, instance_type: str = C.DEFAULT_INSTANCE_TYPE,
                 model_server_timeout_s: float = C.INVOCATIONS_TIMEOUT_S_DEFAULT, poll_initial_s: float = C.POLL_INITIAL_S,
                 poll_max_s: float = C.POLL_MAX_S, deadline_s: float = C.POLL_DEADLINE_S,
                 sleep=time.sleep, clock=time.monotonic):
        if client is None:
            import boto3  # lazy: boto3 (~0.35 s) only when the SageMaker backend is used

            client = boto3.client("sagemaker", region_name=region)
        self.client = client
        self.region = client.meta.region_name
        self.role_arn, self.image_uri = role_arn, image_uri
        self.instance_type = instance_type                    # the jobs' instance type: picks the image
        self.model_server_timeout_s = model_server_timeout_s  # the container's response timeout
        self.poll_initial_s, self.poll_max_s, self.deadline_s = poll_initial_s, poll_max_s, deadline_s
        self._sleep, self._clock = sleep, clock

    @classmethod
    def from_config(cls, cfg: Config) -> SageMakerBackend:
        """From the run config's `transform.sagemaker` section (region, role_arn, optional image_uri)
        and `transform.wait_deadline_s`."""
        t = cfg.transform
        return cls(region=t.sagemaker.region, role_arn=t.sagemaker.role_arn, image_uri=t.sagemaker.image_uri,
                   instance_type=t.instance_type, model_server_timeout_s=t.invocations_timeout_s,
                   deadline_s=t.wait_deadline_s)

    # ------------------------------------------------------------ LocalRuntime's surface
    def create_model(self, name: str, model_data_url: str, environment: dict | None = None) -> dict:
        if not self.role_arn:
            raise TerminalError("SageMaker needs an execution role: set transform.sagemaker.role_arn")
        self.ensure_model(name, model_data_url, self.role_arn, image_uri=self.image_uri,
                          instance_type=self.instance_type, environment=environment)
        return {"ModelName": name}

    def create_transform_job(self, spec: dict) -> dict:
        """Create the job (or attach to one of that name) and wait; the final describe dict.
        A failed job is returned, not raised, as by LocalRuntime; its FailureReason and log
        location are logged."""
        self.submit_transform_job(spec)
        return self.wait(spec["TransformJobName"])

    def describe_transform_job(self, name: str) -> dict:
        d = self._describe("describe_transform_job", TransformJobName=name)
        if d is None:
            raise ResourceNotFound(f"transform job {name} does not exist")
        d = {k: v for k, v in d.items() if k != "ResponseMetadata"}
        d["CloudWatchLogs"] = {"LogGroup": C.TRANSFORM_LOG_GROUP, "LogStreamPrefix": f"{name}/"}
        return d

    # ------------------------------------------------------------ model
    def ensure_model(self, name: str, model_data_url: str, role_arn: str, *, image_uri: str | None = None,
                     instance_type: str = C.DEFAULT_INSTANCE_TYPE, environment: dict | None = None) -> str:
        """Create the Model once (the AWS PyTorch inference image + model.tar.gz on S3 + role);
        an existing model with the same data is reused. Returns the image URI."""
        if not model_data_url.startswith("s3://"):
            raise TerminalError(f"ModelDataUrl {model_data_url!r}: SageMaker needs the model.tar.gz on S3")
        image = image_uri or pytorch_image_uri(self.region, instance_type)
        env = {C.USER_PROGRAM_ENV: C.HANDLER_PROGRAM_DEFAULT, C.SUBMIT_DIRECTORY_ENV: "/opt/ml/model/code",
               C.REGION_ENV: self.region, C.MODEL_SERVER_TIMEOUT_ENV: str(int(self.model_server_timeout_s)),
               **(environment or {})}
        existing = self._describe("describe_model", ModelName=name)
        if existing is not None:
            have = existing.get("PrimaryContainer", {}).get("ModelDataUrl")
            if have != model_data_url:
                raise TerminalError(f"model {name} exists with ModelDataUrl {have}; name models by version so "
                                    f"{model_data_url} gets its own")
            return existing["PrimaryContainer"].get("Image", image)
        self._call("create_model", ModelName=name, ExecutionRoleArn=role_arn,
                   PrimaryContainer={"Image": image, "ModelDataUrl": model_data_url, "Environment": env})
        return image

    # ------------------------------------------------------------ jobs
    def run_transform_job(self, spec: dict, wait: bool = True) -> dict:
        """Create-or-attach (attempts.run_idempotent), then by default wait; the final describe dict."""
        spec = self.validate(spec)
        return run_idempotent(self, lambda name: {**spec, "TransformJobName": name}, spec["TransformJobName"], wait)

    def validate(self, spec: dict) -> dict:
        """The service's limits, then the PyTorch inference container's model server's."""
        spec = validate_job_spec(spec, allow_file_uris=False)
        mb = spec.get("MaxPayloadInMB")
        mb = C.DEFAULT_MAX_PAYLOAD_MB if mb is None else mb
        if mb == 0 or mb * C.MB > C.PYTORCH_MODEL_SERVER_MAX_REQUEST_BYTES:
            size = "unlimited (0, chunked)" if mb == 0 else f"{mb} MB"
            raise SpecError("MaxPayloadInMB", f"{size} requests exceed the PyTorch inference container's model "
                            f"server cap of {C.PYTORCH_MODEL_SERVER_MAX_REQUEST_BYTES} bytes (it answers 413)",
                            "MaxPayloadInMB 1-6 on the AWS PyTorch image")
        timeout = (spec.get("ModelClientConfig") or {}).get("InvocationsTimeoutInSeconds",
                                                             C.INVOCATIONS_TIMEOUT_S_DEFAULT)
        if timeout > self.model_server_timeout_s:
            raise SpecError("ModelClientConfig.InvocationsTimeoutInSeconds",
                            f"{timeout} s is longer than the model server's response timeout "
                            f"({C.MODEL_SERVER_TIMEOUT_ENV}={self.model_server_timeout_s:g} s): a slow mini-batch "
                            "would be cut by the container first",
                            "raise transform.invocations_timeout_s (it sets both)")
        return spec

    # ------------------------------------------------------------ attempts.Backend
    def find_transform_job(self, name: str) -> dict | None:
        return self._describe("describe_transform_job", TransformJobName=name)

    def submit_transform_job(self, spec: dict) -> None:
        try:
            self._call("create_transform_job", **self.validate(spec))
        except _ClientError as e:
            if _code(e) != "ResourceInUse":
                raise
            log.info("transform job %s appeared concurrently; attaching", spec["TransformJobName"])

    def logs_location(self, name: str) -> str:
        return f"CloudWatch group {C.TRANSFORM_LOG_GROUP}, streams {name}/* (region {self.region})"

    def wait(self, name: str) -> dict:
        """Poll until the job ends; the final describe dict. Raises TransformJobTimeout at our deadline."""
        deadline = self._clock() + self.deadline_s
        pauses = Backoff(self.poll_initial_s, max_s=self.poll_max_s).pauses()
        pause = next(pauses)
        last = None
        while True:
            try:
                d = self.describe_transform_job(name)
            except TransientError:
                d = None
            if d is not None:
                status = d["TransformJobStatus"]
                if status != last:
                    log.info("transform job %s: %s", name, status)
                    last = status
                if status == "Completed":
                    return d
                if status in ("Failed", "Stopped"):
                    log.error("%s", TransformJobFailed(name, status, d.get("FailureReason", ""), self.logs_location(name)))
                    return d
            if self._clock() + pause > deadline:
                raise TransformJobTimeout(f"transform job {name} still {last} after {self.deadline_s:.0f} s; "
                                          "rerun to re-attach to it (it keeps running)")
            self._sleep(pause)
            pause = next(pauses)

    # ------------------------------------------------------------ plumbing
    def _call(self, op: str, **kwargs):
        try:
            return getattr(self.client, op)(**kwargs)
        except _ClientError as e:
            if _code(e) in _THROTTLING:
                raise TransientError(f"{op}: {_code(e)}: {e}") from e
            raise

    def _describe(self, op: str, **kwargs) -> dict | None:
        try:
            return self._call(op, **kwargs)
        except _ClientError as e:
            msg = str(e)
            if _code(e) in ("ValidationException", "ResourceNotFound") and (
                    "not found" in msg.lower() or "could not find" in msg.lower() or "does not exist" in msg.lower()):
                return None
            raise


def _code(e) -> str:
    return str(e.response.get("Error", {}).get("Code", ""))


try:
    from botocore.exceptions import ClientError as _ClientError
except ImportError:  # pragma: no cover - boto3 is a dependency
    _ClientError = Exception
