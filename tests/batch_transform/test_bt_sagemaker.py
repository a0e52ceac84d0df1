"""The SageMaker backend against a moto server: request shapes, idempotent reruns, polling."""

import re
from datetime import datetime, timedelta

import boto3
import botocore.session
import botocore.validate
import pytest

from velibcast import constants as C
from velibcast.batch_transform import attempts
from velibcast.batch_transform import sagemaker_backend as sm
from velibcast.batch_transform.local import LocalRuntime
from velibcast.batch_transform.spec import SpecError, validate_job_spec
from velibcast.errors import TerminalError
from velibcast.storage import Storage, join
from velibcast.timeutil import UTC

ROLE = "arn:aws:iam::123456789012:role/velibcast-sagemaker"
NAME_RE = re.compile(C.JOB_NAME_PATTERN)


def moto_job(name):
    from moto.sagemaker.models import sagemaker_backends
    return sagemaker_backends["123456789012"]["eu-west-3"].transform_jobs[name]


@pytest.fixture
def calls(aws_env):
    """A real boto3 client on the moto server, recording every request it sends."""
    client = boto3.client("sagemaker")
    seen = []
    client.meta.events.register("provide-client-params.sagemaker.*",
                                lambda params, model, **kw: seen.append((model.name, dict(params))))
    return client, seen


def spec_for(s3_root, make_spec, name="velib-nightly-abc123"):
    return make_spec(name, join(s3_root, "in"), join(s3_root, "out"), MaxPayloadInMB=6, BatchStrategy="MultiRecord",
                     DataProcessing={"InputFilter": "$[1:]", "OutputFilter": "$[0,-1:]", "JoinSource": "Input"})


def test_job_name_for_is_deterministic_and_valid():
    parts = {"flow": "nightly", "run_date": "2022-05-26", "model": "v20220526-abc", "config": "x" * 100}
    name = attempts.job_name_for(parts)
    assert name == attempts.job_name_for(dict(parts))
    # The hash ignores key order; the readable head follows the caller's order.
    assert name[-12:] == attempts.job_name_for(dict(reversed(list(parts.items()))))[-12:]
    assert len(name) <= 63 and NAME_RE.fullmatch(name)
    assert name != attempts.job_name_for({**parts, "run_date": "2022-05-27"})
    assert name.startswith("nightly-2022-05-26-")
    for r in range(1, C.MAX_JOB_ATTEMPTS):
        n = attempts.attempt_name(name, r)
        assert len(n) <= 63 and NAME_RE.fullmatch(n) and n.endswith(f"-r{r}")
    assert NAME_RE.fullmatch(attempts.job_name_for({"a": "__", "b": ""}))


def test_billed_seconds():
    t = datetime(2022, 5, 26, 2, 30, tzinfo=UTC)
    assert sm.billed_seconds({"TransformStartTime": t, "TransformEndTime": t + timedelta(seconds=95.5)}) == 95.5
    assert sm.billed_seconds({"TransformStartTime": t.isoformat(),
                              "TransformEndTime": (t + timedelta(seconds=3)).isoformat()}) == 3.0
    assert sm.billed_seconds({}) == 0.0
    assert sm.billed_seconds({"TransformStartTime": t, "TransformEndTime": t - timedelta(seconds=1)}) == 0.0


def test_image_uri_is_the_regions_pytorch_inference_image():
    uri = sm.pytorch_image_uri("eu-west-3")
    assert re.fullmatch(r"\d+\.dkr\.ecr\.eu-west-3\.amazonaws\.com/pytorch-inference:[\d.]+-cpu-py3\d+", uri)


def test_request_shapes_match_the_service_model(calls, s3_root, make_spec):
    client, seen = calls
    be = sm.SageMakerBackend(client, sleep=lambda s: None)
    be.ensure_model("shape-model", join(s3_root, "models/v1/model.tar.gz"), ROLE)
    spec = spec_for(s3_root, make_spec)
    d = be.run_transform_job(spec)
    assert d["TransformJobStatus"] == "Completed"
    ops = [op for op, _ in seen]
    assert ops.count("CreateModel") == 1 and ops.count("CreateTransformJob") == 1
    model = botocore.session.get_session().get_service_model("sagemaker")
    for op, params in seen:
        botocore.validate.validate_parameters(params, model.operation_model(op).input_shape)
    create = dict(seen)["CreateTransformJob"]
    assert create == validate_job_spec(spec, allow_file_uris=False)   # the same spec, defaults echoed
    cm = dict(seen)["CreateModel"]
    assert cm["ExecutionRoleArn"] == ROLE
    assert cm["PrimaryContainer"]["Image"] == sm.pytorch_image_uri("eu-west-3")
    assert cm["PrimaryContainer"]["Environment"]["SAGEMAKER_PROGRAM"] == "inference.py"


def test_completed_job_is_reused_and_model_not_recreated(calls, s3_root, make_spec):
    client, seen = calls
    be = sm.SageMakerBackend(client, sleep=lambda s: None)
    url = join(s3_root, "models/v1/model.tar.gz")
    be.ensure_model("reuse-model", url, ROLE)
    be.ensure_model("reuse-model", url, ROLE)
    spec = spec_for(s3_root, make_spec, "reuse-1")
    be.run_transform_job(spec)
    be.run_transform_job(spec)
    ops = [op for op, _ in seen]
    assert ops.count("CreateModel") == 1 and ops.count("CreateTransformJob") == 1
    with pytest.raises(TerminalError, match="name models by version"):
        be.ensure_model("reuse-model", join(s3_root, "models/v2/model.tar.gz"), ROLE)


def test_in_progress_job_is_reattached_and_polled_with_backoff(calls, s3_root, make_spec):
    client, seen = calls
    sleeps = []
    be = sm.SageMakerBackend(client, poll_initial_s=1, poll_max_s=4, sleep=sleeps.append)
    spec = spec_for(s3_root, make_spec, "attach-1")
    be.run_transform_job(spec, wait=False)
    job = moto_job("attach-1")
    job.transform_job_status = "InProgress"

    def tick(s):
        sleeps.append(s)
        if len(sleeps) == 4:
            job.transform_job_status = "Completed"
    be._sleep = tick
    sleeps.clear()
    d = be.run_transform_job(spec)
    assert d["TransformJobStatus"] == "Completed"
    assert [op for op, _ in seen].count("CreateTransformJob") == 1
    assert sleeps == [1, 2, 4, 4]


def test_failed_job_gets_a_new_attempt_with_r_suffix(calls, s3_root, make_spec):
    client, seen = calls
    be = sm.SageMakerBackend(client, sleep=lambda s: None)
    spec = spec_for(s3_root, make_spec, "fail-1")
    be.run_transform_job(spec, wait=False)
    moto_job("fail-1").transform_job_status = "Failed"
    d = be.run_transform_job(spec)
    assert d["TransformJobName"] == "fail-1-r1" and d["TransformJobStatus"] == "Completed"
    names = [p["TransformJobName"] for op, p in seen if op == "CreateTransformJob"]
    assert names == ["fail-1", "fail-1-r1"]


def test_failure_reports_reason_and_log_group(calls, s3_root, make_spec):
    client, _ = calls
    be = sm.SageMakerBackend(client, sleep=lambda s: None)
    spec = spec_for(s3_root, make_spec, "fail-2")
    be.run_transform_job(spec, wait=False)
    job = moto_job("fail-2")
    job.transform_job_status, job.failure_reason = "Failed", "AlgorithmError: See job logs for more information"
    d = be.wait("fail-2")   # LocalRuntime's surface: the final describe, status Failed
    assert d["TransformJobStatus"] == "Failed"
    assert d["CloudWatchLogs"] == {"LogGroup": "/aws/sagemaker/TransformJobs", "LogStreamPrefix": "fail-2/"}
    be.run_transform_job(spec_for(s3_root, make_spec, "fail-3"), wait=False)
    job3 = moto_job("fail-3")
    job3.transform_job_status = "InProgress"

    def fail_now(_):
        job3.transform_job_status, job3.failure_reason = "Failed", "AlgorithmError: See job logs for more information"
    be._sleep = fail_now
    with pytest.raises(attempts.TransformJobFailed) as ei:
        be.run_transform_job(spec_for(s3_root, make_spec, "fail-3"))   # run_transform_job raises
    e = ei.value
    assert "AlgorithmError: See job logs" in str(e)
    assert e.name == "fail-3" and "streams fail-3/*" in e.logs
    assert "/aws/sagemaker/TransformJobs" in str(e)


def test_stopped_job_is_not_retried(calls, s3_root, make_spec):
    client, _ = calls
    be = sm.SageMakerBackend(client, sleep=lambda s: None)
    spec = spec_for(s3_root, make_spec, "stopped-1")
    be.run_transform_job(spec, wait=False)
    moto_job("stopped-1").transform_job_status = "Stopped"
    with pytest.raises(attempts.TransformJobFailed, match="Stopped"):
        be.run_transform_job(spec)


def test_own_deadline(calls, s3_root, make_spec):
    client, _ = calls
    now = [0.0]
    be = sm.SageMakerBackend(client, poll_initial_s=10, poll_max_s=60, deadline_s=100,
                             sleep=lambda s: now.__setitem__(0, now[0] + s), clock=lambda: now[0])
    spec = spec_for(s3_root, make_spec, "slow-1")
    be.run_transform_job(spec, wait=False)
    moto_job("slow-1").transform_job_status = "InProgress"
    with pytest.raises(sm.TransformJobTimeout, match="re-attach"):
        be.wait("slow-1")
    assert now[0] <= 100


def test_spec_is_validated_before_any_call(calls, tmp_path, make_spec):
    client, seen = calls
    be = sm.SageMakerBackend(client)
    with pytest.raises(SpecError, match="pattern"):
        be.run_transform_job(make_spec("local-only", f"file://{tmp_path}/in", "s3://b/out"))
    with pytest.raises(SpecError, match="MaxConcurrentTransforms"):
        be.run_transform_job({**make_spec("x", "s3://b/in", "s3://b/out"), "MaxConcurrentTransforms": 20,
                              "MaxPayloadInMB": 6})
    assert seen == []


def test_same_job_spec_through_both_backends(calls, s3_root, make_spec, model_tar):
    client, seen = calls
    storage = Storage()
    storage.write_text(join(s3_root, "in", "part-0.csv"), "st1@t,1,2\nst2@t,3,4\n")
    model_uri = join(s3_root, "models", "v1", "model.tar.gz")
    storage.write_bytes(model_uri, open(model_tar, "rb").read())
    spec = {**spec_for(s3_root, make_spec, "both-1"), "ModelName": "both-model"}

    local = LocalRuntime(storage, join(s3_root, "state"))
    remote = sm.SageMakerBackend(client, role_arn=ROLE, sleep=lambda s: None)
    results = []
    for backend in (local, remote):   # one surface, one spec
        backend.create_model("both-model", model_uri)
        results.append(backend.create_transform_job(spec))
    local.close()
    ld, rd = results
    assert remote.describe_transform_job("both-1")["TransformJobStatus"] == "Completed"

    assert ld["TransformJobStatus"] == rd["TransformJobStatus"] == "Completed"
    assert storage.read_text(join(s3_root, "out", "part-0.csv.out")) == "st1@t,3\nst2@t,7\n"
    sent = dict(seen)["CreateTransformJob"]
    for key in ("TransformInput", "TransformOutput", "TransformResources", "DataProcessing", "BatchStrategy",
                "MaxPayloadInMB", "ModelName"):
        assert ld[key] == sent[key] == rd[key], key
    # the local job really ran (start < end); the mocked SageMaker answer has no times, so nothing is billed
    assert sm.billed_seconds(ld) > 0 and sm.billed_seconds(rd) == 0


# ------------------------------------------------------------ divergence 12 (batch_transform/README.md)
def test_the_image_follows_the_job_s_instance_type(calls, s3_root):
    client, seen = calls
    be = sm.SageMakerBackend(client, role_arn=ROLE, instance_type="ml.g4dn.xlarge", sleep=lambda s: None)
    be.create_model("gpu-model", join(s3_root, "models/v1/model.tar.gz"))
    image = dict(seen)["CreateModel"]["PrimaryContainer"]["Image"]
    assert image == sm.pytorch_image_uri("eu-west-3", "ml.g4dn.xlarge") and "-gpu-" in image


def test_from_config_takes_the_instance_type_and_the_model_server_timeout(monkeypatch):
    from velibcast.config import load_config
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-3")
    cfg = load_config(None, {"transform": {"backend": "sagemaker", "instance_type": "ml.g4dn.xlarge",
                                           "invocations_timeout_s": 900,
                                           "sagemaker": {"role_arn": ROLE, "region": "eu-west-3"}}})
    be = sm.SageMakerBackend.from_config(cfg)
    assert be.instance_type == "ml.g4dn.xlarge" and be.model_server_timeout_s == 900


def test_the_model_server_timeout_is_the_job_s_invocation_timeout(calls, s3_root, make_spec):
    # The PyTorch container's TorchServe answers after 60 s by default (SAGEMAKER_MODEL_SERVER_TIMEOUT).
    client, seen = calls
    be = sm.SageMakerBackend(client, role_arn=ROLE, model_server_timeout_s=900, sleep=lambda s: None)
    be.create_model("slow-model", join(s3_root, "models/v1/model.tar.gz"))
    assert dict(seen)["CreateModel"]["PrimaryContainer"]["Environment"]["SAGEMAKER_MODEL_SERVER_TIMEOUT"] == "900"
    spec = spec_for(s3_root, make_spec, "slow-1")
    spec["ModelClientConfig"] = {"InvocationsTimeoutInSeconds": 1200}
    with pytest.raises(SpecError, match="InvocationsTimeoutInSeconds: 1200 s is longer than the model server"):
        be.run_transform_job(spec)


def test_a_payload_over_the_pytorch_model_server_cap_is_refused(calls, s3_root, make_spec):
    # TorchServe in AWS's PyTorch inference image caps a request at 6,553,500 bytes.
    client, seen = calls
    be = sm.SageMakerBackend(client, sleep=lambda s: None)
    spec = spec_for(s3_root, make_spec, "big-1")
    spec["MaxPayloadInMB"] = 7
    with pytest.raises(SpecError, match="MaxPayloadInMB: 7 MB .* 6553500 bytes"):
        be.run_transform_job(spec)
    assert not [op for op, _ in seen if op == "CreateTransformJob"]

