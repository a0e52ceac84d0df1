"""The SageMaker backend: the same validated job spec, run on the real service with boto3.

Safe to retry from Prefect: the job name is deterministic (the caller's, see
job_name_for), so a retried flow describes before it creates. An InProgress job is
re-attached, a Completed one reused; only a Failed attempt leads to a new one, named
`<name>-rN`. A Stopped job is not retried: someone stopped it on purpose.
Polling has its own deadline and backoff, since boto3's waiter gives up after an hour.
sagemaker-core is used only for the PyTorch inference image URI.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from datetime import datetime

from velibcast import constants as C
from velibcast.batch_transform.spec import validate_job_spec
from velibcast.errors import TerminalError, TransientError

log = logging.getLogger("velibcast.sagemaker")

_THROTTLING = {"ThrottlingException", "Throttling", "TooManyRequestsException", "RequestLimitExceeded",
               "ServiceUnavailable", "InternalFailure", "InternalServerError"}


class TransformJobFailed(TerminalError):
    """The job ended Failed/Stopped; carries the service's FailureReason and where its logs are."""

    def __init__(self, name: str, status: str, reason: str, region: str):
        self.name, self.status, self.reason = name, status, reason
        self.log_group = C.TRANSFORM_LOG_GROUP
        self.log_stream_prefix = f"{name}/"
        super().__init__(
            f"transform job {name} ended {status}: {reason or 'no FailureReason'}; logs: CloudWatch group "
            f"{self.log_group}, streams {self.log_stream_prefix}* (region {region})")


class TransformJobTimeout(TransientError):
    """Still running at our deadline; a retry re-attaches to the same job."""


def job_name_for(parts: dict) -> str:
    """A deterministic, valid job name from a run's parameters: readable head + hash.

    Same parts -> same name (so a retry finds its job); different parts -> different names.
    The hash covers the sorted parts; the readable head joins the values in the caller's order.
    At most 63 characters, matching [a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}, with room for `-rN`.
    """
    canonical = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    digest = hashlib.sha256(canonical.encode()).hexdigest()[:12]
    head = "-".join(re.sub(r"[^a-zA-Z0-9]+", "-", str(v)).strip("-") for v in parts.values() if str(v))
    head = re.sub(r"-+", "-", head).strip("-")
    room = C.JOB_NAME_MAX_LEN - len(digest) - 1 - len("-r9")
    head = head[:room].rstrip("-")
    return f"{head}-{digest}" if head else f"job-{digest}"


def attempt_name(base: str, attempt: int) -> str:
    if attempt == 0:
        return base
    suffix = f"-r{attempt}"
    return base[: C.JOB_NAME_MAX_LEN - len(suffix)].rstrip("-") + suffix


def billed_seconds(describe: dict) -> float:
    """Billed time per instance: TransformStartTime to TransformEndTime (BTS §5.1)."""
    start, end = describe.get("TransformStartTime"), describe.get("TransformEndTime")
    if not start or not end:
        return 0.0
    if isinstance(start, str):
        start, end = datetime.fromisoformat(start), datetime.fromisoformat(end)
    return max(0.0, (end - start).total_seconds())


def pytorch_image_uri(region: str, instance_type: str = C.DEFAULT_INSTANCE_TYPE) -> str:
    from sagemaker.core import image_uris

    return image_uris.retrieve("pytorch", region=region, version=C.PYTORCH_INFERENCE_VERSION,
                               py_version=C.PYTORCH_INFERENCE_PY_VERSION, instance_type=instance_type,
                               image_scope="inference")


class SageMakerBackend:
    """The same surface as LocalRuntime (create_model, create_transform_job, describe_transform_job,
    wait) plus run_transform_job, the create-or-attach loop for callers without their own."""

    def __init__(self, client=None, region: str | None = None, *, role_arn: str | None = None,
                 image_uri: str | None = None, poll_initial_s: float = C.POLL_INITIAL_S,
                 poll_max_s: float = C.POLL_MAX_S, deadline_s: float = C.POLL_DEADLINE_S,
                 sleep=time.sleep, clock=time.monotonic):
        if client is None:
            import boto3

            client = boto3.client("sagemaker", region_name=region)
        self.client = client
        self.region = client.meta.region_name
        self.role_arn, self.image_uri = role_arn, image_uri
        self.poll_initial_s, self.poll_max_s, self.deadline_s = poll_initial_s, poll_max_s, deadline_s
        self._sleep, self._clock = sleep, clock

    @classmethod
    def from_config(cls, cfg) -> "SageMakerBackend":
        """From the run config's `transform.sagemaker` section (region, role_arn, optional image_uri)."""
        sm_cfg = cfg["transform"]["sagemaker"]
        return cls(region=sm_cfg.get("region"), role_arn=sm_cfg.get("role_arn"), image_uri=sm_cfg.get("image_uri"))

    # ------------------------------------------------------------ LocalRuntime's surface
    def create_model(self, name: str, model_data_url: str, environment: dict | None = None) -> dict:
        if not self.role_arn:
            raise TerminalError("SageMaker needs an execution role: set transform.sagemaker.role_arn")
        self.ensure_model(name, model_data_url, self.role_arn, image_uri=self.image_uri, environment=environment)
        return {"ModelName": name}

    def create_transform_job(self, spec: dict) -> dict:
        """Create the job (or attach to one of that name) and wait; the final describe dict.
        A failed job is returned, not raised, as by LocalRuntime; its FailureReason and log
        location are logged."""
        spec = validate_job_spec(spec, allow_file_uris=False)
        try:
            self._call("create_transform_job", **spec)
        except _ClientError as e:
            if _code(e) != "ResourceInUse":
                raise
        return self.wait(spec["TransformJobName"])

    def describe_transform_job(self, name: str) -> dict:
        d = self._describe("describe_transform_job", TransformJobName=name)
        if d is None:
            from velibcast.batch_transform.local import ResourceNotFound

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
        env = {"SAGEMAKER_PROGRAM": C.HANDLER_PROGRAM_DEFAULT, "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
               "SAGEMAKER_REGION": self.region, **(environment or {})}
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
        """Create-or-attach, then (by default) wait; returns the final describe dict.

        Raises TransformJobFailed when the job fails (after creating no more than
        C.MAX_JOB_ATTEMPTS attempts over successive calls) and TransformJobTimeout at our deadline.
        """
        spec = validate_job_spec(spec, allow_file_uris=False)
        base = spec["TransformJobName"]
        for attempt in range(C.MAX_JOB_ATTEMPTS):
            name = attempt_name(base, attempt)
            d = self._describe("describe_transform_job", TransformJobName=name)
            if d is None:
                try:
                    self._call("create_transform_job", **{**spec, "TransformJobName": name})
                    log.info("created transform job %s", name)
                except _ClientError as e:
                    if _code(e) != "ResourceInUse":
                        raise
                    log.info("transform job %s appeared concurrently; attaching", name)
            elif d["TransformJobStatus"] in ("InProgress", "Stopping"):
                log.info("re-attaching to transform job %s (%s)", name, d["TransformJobStatus"])
            elif d["TransformJobStatus"] == "Completed":
                log.info("reusing completed transform job %s", name)
                return self.describe_transform_job(name)
            elif d["TransformJobStatus"] == "Stopped":
                raise TransformJobFailed(name, "Stopped", "stopped by a user; choose a new job name to rerun",
                                         self.region)
            else:
                log.warning("transform job %s failed before (%s); next attempt", name, d.get("FailureReason"))
                continue
            if not wait:
                return self.describe_transform_job(name)
            d = self.wait(name)
            if d["TransformJobStatus"] != "Completed":
                raise TransformJobFailed(name, d["TransformJobStatus"], d.get("FailureReason", ""), self.region)
            return d
        raise TerminalError(f"transform job {base}: {C.MAX_JOB_ATTEMPTS} attempts failed; see the FailureReason "
                            f"of {attempt_name(base, C.MAX_JOB_ATTEMPTS - 1)} and fix the cause before rerunning")

    def wait(self, name: str) -> dict:
        """Poll until the job ends; the final describe dict. Raises TransformJobTimeout at our deadline."""
        deadline = self._clock() + self.deadline_s
        pause = self.poll_initial_s
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
                    log.error("%s", TransformJobFailed(name, status, d.get("FailureReason", ""), self.region))
                    return d
            if self._clock() + pause > deadline:
                raise TransformJobTimeout(f"transform job {name} still {last} after {self.deadline_s:.0f} s; "
                                          "rerun to re-attach to it (it keeps running)")
            self._sleep(pause)
            pause = min(pause * 2, self.poll_max_s)

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
