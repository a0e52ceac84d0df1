"""A local SageMaker API endpoint that runs real Batch Transform jobs.

    velibcast sagemaker-api --port 8090            # then: AWS_ENDPOINT_URL_SAGEMAKER=http://127.0.0.1:8090

It speaks the SageMaker JSON protocol (awsJson1_1: `POST /`, `X-Amz-Target: SageMaker.<Op>`)
for the calls a batch user makes: CreateModel, DescribeModel, DeleteModel,
CreateTransformJob, DescribeTransformJob, ListTransformJobs, StopTransformJob, each on the
public interface of one local runtime (local.py), which holds the models and runs each job in a
thread of this process, reading and writing S3
through the standard AWS configuration (`AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL` for a
moto server or any S3-compatible store). boto3 and sagemaker-core clients pointed at it work
unchanged: errors carry the service's codes (ValidationException, ResourceInUse,
ResourceNotFound) in the `{"__type", "message"}` body botocore parses, and requests are
checked against botocore's service model, CreateTransformJob exactly as the CLI checks it
(spec.validate_job_spec), except that S3Uri and S3OutputPath must be S3 URIs: a client of
the endpoint never names this host's files. SageMaker local mode needs Docker and moto's SageMaker completes
jobs without running them; this endpoint transforms.

Not an AWS emulator: no authentication (it binds 127.0.0.1 unless told otherwise), no
Image (the model runs with velibcast's server under the PyTorch handler contract), models
are kept in memory for the life of the process, jobs on disk under the --config's store.root
(./data with configs/local.yaml, where `velibcast transform-job list` looks) or --state-root.
"""

from __future__ import annotations

import json
import logging
import threading
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from velibcast import storage as st
from velibcast.batch_transform import dataplane as dp
from velibcast.batch_transform.errors import ApiError, ResourceInUse, ResourceNotFound
from velibcast.batch_transform.local import LocalRuntime
from velibcast.batch_transform.spec import SpecError, validate_request
from velibcast.errors import VelibcastError
from velibcast.timeutil import UTC

log = logging.getLogger("velibcast.sagemaker_api")

TARGET_PREFIX = "SageMaker."
JSON_CONTENT_TYPE = "application/x-amz-json-1.1"
LIST_MAX_RESULTS_DEFAULT = 10                    # ListTransformJobs' MaxResults default (service model)


class SageMakerApi:
    """The operations, on a LocalRuntime (its models, its jobs); `call(op, body) -> dict` or ApiError."""

    def __init__(self, storage: st.Storage, state_root: str, settings: dp.DataPlaneSettings | None = None):
        # S3 only, as the service: a client of the endpoint never names this host's files.
        self.rt = LocalRuntime(storage, state_root, settings, allow_file_uris=False)
        self._lock = threading.Lock()  # CreateModel and DeleteModel: a name's check and change together

    def call(self, op: str, body: dict) -> dict:
        handler = getattr(self, f"op_{op}", None)
        if handler is None:
            raise ApiError("UnknownOperationException", f"{op} is not supported by velibcast's local SageMaker API")
        try:
            if op != "CreateTransformJob":  # checked by validate_job_spec, as the CLI does
                validate_request(op, body)
            return handler(body)
        except SpecError as e:
            raise ApiError("ValidationException", str(e)) from e
        except ResourceInUse as e:
            raise ApiError("ResourceInUse", str(e)) from e
        except ResourceNotFound as e:
            raise ApiError("ResourceNotFound", str(e)) from e

    def close(self) -> None:
        self.rt.close()  # after the jobs it runs in the background

    # ------------------------------------------------------------ models
    def op_CreateModel(self, body: dict) -> dict:
        name = body["ModelName"]
        container = body.get("PrimaryContainer") or (body.get("Containers") or [None])[0]
        if not container or not container.get("ModelDataUrl"):
            raise ApiError("ValidationException", "PrimaryContainer.ModelDataUrl is required locally: the model "
                                                  "runs from its model.tar.gz")
        with self._lock:
            if self.rt.has_model(name):
                raise ApiError("ValidationException",
                               f'Cannot create already existing model "{self.rt.arn("model", name)}".')
            try:
                arn = self.rt.create_model(name, container["ModelDataUrl"], container.get("Environment"),
                                           execution_role_arn=body.get("ExecutionRoleArn", ""),
                                           container=container)["ModelArn"]
            except (VelibcastError, st.StorageError) as e:
                raise ApiError("ValidationException", f"Could not access model data at "
                                                      f"{container['ModelDataUrl']}: {e}") from e
        return {"ModelArn": arn}

    def op_DescribeModel(self, body: dict) -> dict:
        try:
            return self.rt.describe_model(body["ModelName"])
        except ResourceNotFound:
            raise self._no_model(body["ModelName"]) from None

    def op_DeleteModel(self, body: dict) -> dict:
        with self._lock:
            try:
                self.rt.delete_model(body["ModelName"])
            except ResourceNotFound:
                raise self._no_model(body["ModelName"]) from None
        return {}

    def _no_model(self, name: str) -> ApiError:
        return ApiError("ValidationException", f'Could not find model "{self.rt.arn("model", name)}".')

    # ------------------------------------------------------------ jobs
    def op_CreateTransformJob(self, body: dict) -> dict:
        # validation, empty input, ResourceInUse: raised before we answer, as the service does
        return {"TransformJobArn": self.rt.launch_transform_job(body)}

    def op_DescribeTransformJob(self, body: dict) -> dict:
        name = body["TransformJobName"]
        try:
            return self.rt.describe_transform_job(name, local_fields=False)
        except ResourceNotFound as e:
            raise ResourceNotFound(f"Could not find requested job with name {name}") from e

    def op_StopTransformJob(self, body: dict) -> dict:
        name = body["TransformJobName"]
        d = self.op_DescribeTransformJob(body)
        if d["TransformJobStatus"] in ("Stopping", "Stopped"):
            return {}
        if d["TransformJobStatus"] != "InProgress":
            raise ApiError("ValidationException", f"Transform job {name} is {d['TransformJobStatus']} and cannot be "
                                                  "stopped")
        self.rt.stop_transform_job(name)
        return {}

    def op_ListTransformJobs(self, body: dict) -> dict:
        jobs = [j for j in self.rt.list_transform_jobs(local_fields=False) if _listed(j, body)]
        key = {"Name": lambda j: j["TransformJobName"], "Status": lambda j: j["TransformJobStatus"]}.get(
            body.get("SortBy", "CreationTime"), lambda j: j["CreationTime"])
        jobs.sort(key=key, reverse=body.get("SortOrder", "Descending") == "Descending")
        start = int(body.get("NextToken") or 0)
        n = body.get("MaxResults", LIST_MAX_RESULTS_DEFAULT)
        page = jobs[start:start + n]
        out: dict[str, Any] = {"TransformJobSummaries": [
            {k: j[k] for k in ("TransformJobName", "TransformJobArn", "CreationTime", "TransformEndTime",
                               "LastModifiedTime", "TransformJobStatus", "FailureReason") if k in j} for j in page]}
        if start + n < len(jobs):
            out["NextToken"] = str(start + n)
        return out


def _listed(job: dict, q: dict) -> bool:
    if q.get("NameContains") and q["NameContains"].lower() not in job["TransformJobName"].lower():
        return False
    if q.get("StatusEquals") and job["TransformJobStatus"] != q["StatusEquals"]:
        return False
    for key, field, after in (("CreationTimeAfter", "CreationTime", True), ("CreationTimeBefore", "CreationTime", False),
                              ("LastModifiedTimeAfter", "LastModifiedTime", True),
                              ("LastModifiedTimeBefore", "LastModifiedTime", False)):
        if key in q:
            bound = datetime.fromtimestamp(float(q[key]), UTC)
            if (job[field] <= bound) if after else (job[field] >= bound):
                return False
    return True


def _wire(v):
    """JSON protocol values: timestamps as epoch seconds, as the service sends them."""
    if isinstance(v, datetime):
        return v.timestamp()
    if isinstance(v, dict):
        return {k: _wire(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_wire(x) for x in v]
    return v


def make_handler(api: SageMakerApi):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            target = self.headers.get("X-Amz-Target", "")
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                if not target.startswith(TARGET_PREFIX):
                    raise ApiError("UnknownOperationException", f"X-Amz-Target {target!r} is not a SageMaker operation")
                try:
                    body = json.loads(raw or b"{}")
                except ValueError as e:
                    raise ApiError("SerializationException", f"request body is not JSON: {e}") from e
                status, out = 200, api.call(target[len(TARGET_PREFIX):], body)
            except ApiError as e:
                status, out = e.status, {"__type": e.code, "message": e.message}
            except Exception as e:  # a fault of ours: the service's InternalFailure, never a hung client
                log.exception("%s", target)
                status, out = 500, {"__type": "InternalFailure", "message": f"{type(e).__name__}: {e}"}
            data = json.dumps(_wire(out)).encode()
            self.send_response(status)
            self.send_header("Content-Type", JSON_CONTENT_TYPE)
            self.send_header("Content-Length", str(len(data)))
            if status != 200:
                self.send_header("x-amzn-ErrorType", out["__type"])
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, fmt, *args):
            log.info("%s %s", self.address_string(), fmt % args)

    return Handler


def make_server(api: SageMakerApi, host: str, port: int) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer((host, port), make_handler(api))
    server.daemon_threads = True
    return server


def serve(port: int, host: str, state_root: str, settings: dp.DataPlaneSettings | None = None) -> None:
    api = SageMakerApi(st.Storage(), state_root, settings)
    server = make_server(api, host, port)
    print(f"velibcast SageMaker API on http://{host}:{server.server_address[1]} "
          f"(set AWS_ENDPOINT_URL_SAGEMAKER to it); job state in {state_root}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        api.close()
