"""The local SageMaker API endpoint: a real `velibcast sagemaker-api` process, boto3 pointed
at it with AWS_ENDPOINT_URL_SAGEMAKER, S3 on the moto server."""

import ast
import json
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError

from velibcast.batch_transform import sagemaker_api
from velibcast.batch_transform.errors import ResourceNotFound
from velibcast.batch_transform.sagemaker_api import SageMakerApi
from velibcast.flows.cli import main as velibcast_main
from velibcast.storage import Storage, join


@pytest.fixture
def api(sagemaker_api):
    """A boto3 SageMaker client built the ordinary way, reaching the endpoint through the AWS config."""
    return boto3.client("sagemaker")


def _wait(sm, name):
    sm.get_waiter("transform_job_completed_or_stopped").wait(
        TransformJobName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 300})
    return sm.describe_transform_job(TransformJobName=name)


def _outputs(storage, prefix):
    return {o.uri[len(prefix):]: storage.read_bytes(o.uri) for o in storage.list(prefix)}


def test_boto3_runs_a_job_like_the_cli(api, s3_root, model_tar, make_spec, tmp_path, capsys):
    storage = Storage()
    model_uri = join(s3_root, "models", "model.tar.gz")
    storage.write_bytes(model_uri, open(model_tar, "rb").read())
    for key, text in {"a.csv": "st1@t,1,2,3\nst2@t,4,5,6\n", "sub/b.csv": "st3@t,1,1,1\n"}.items():
        storage.write_bytes(join(s3_root, "in", key), text.encode())
    dp = {"InputFilter": "$[1:]", "OutputFilter": "$[0,-1:]", "JoinSource": "Input"}

    api.create_model(ModelName="test-model", ExecutionRoleArn="arn:aws:iam::000000000000:role/local",
                     PrimaryContainer={"Image": "local", "ModelDataUrl": model_uri})
    assert api.describe_model(ModelName="test-model")["PrimaryContainer"]["ModelDataUrl"] == model_uri
    spec = make_spec("api-job", join(s3_root, "in") + "/", join(s3_root, "out-api"), DataProcessing=dp)
    arn = api.create_transform_job(**spec)["TransformJobArn"]
    assert arn.endswith(":transform-job/api-job")
    d = _wait(api, "api-job")
    assert d["TransformJobStatus"] == "Completed" and d["TransformEndTime"] >= d["TransformStartTime"]
    assert d["DataProcessing"] == dp and "LocalOwner" not in d

    # The CLI's run of the same spec writes the same bytes.
    cli_spec = make_spec("cli-job", join(s3_root, "in") + "/", join(s3_root, "out-cli"), DataProcessing=dp)
    (tmp_path / "job.json").write_text(json.dumps(cli_spec))
    assert velibcast_main(["transform-job", "run", "--cli-input-json", str(tmp_path / "job.json"),
                           "--model-data", model_uri, "--state-root", str(tmp_path / "cli-state")]) == 0
    got = _outputs(storage, join(s3_root, "out-api"))
    assert got == _outputs(storage, join(s3_root, "out-cli"))
    assert got == {"/a.csv.out": b"st1@t,6\nst2@t,15\n", "/sub/b.csv.out": b"st3@t,3\n"}

    # A duplicate name is ResourceInUse.
    with pytest.raises(ClientError) as ei:
        api.create_transform_job(**spec)
    assert ei.value.response["Error"]["Code"] == "ResourceInUse"

    # A bad spec is a ValidationException with the CLI's field message.
    bad = make_spec("bad-job", join(s3_root, "in"), join(s3_root, "out-bad"), MaxPayloadInMB=200)
    with pytest.raises(ClientError) as ei:
        api.create_transform_job(**bad)
    assert ei.value.response["Error"]["Code"] == "ValidationException"
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    capsys.readouterr()
    assert velibcast_main(["transform-job", "run", "--cli-input-json", str(tmp_path / "bad.json"),
                           "--model-data", model_uri, "--state-root", str(tmp_path / "cli-state")]) == 2
    message = ei.value.response["Error"]["Message"]
    assert message == "MaxPayloadInMB: 200 is out of range (limit: 0-100)"
    assert f"error: {message}" in capsys.readouterr().err

    # An empty input is refused at create, as on the service.
    with pytest.raises(ClientError, match="No S3 objects found under S3 URL"):
        api.create_transform_job(**make_spec("empty-job", join(s3_root, "nothing/"), join(s3_root, "o")))

    summaries = api.list_transform_jobs(NameContains="api")["TransformJobSummaries"]
    assert [s["TransformJobName"] for s in summaries] == ["api-job"]
    assert summaries[0]["TransformJobStatus"] == "Completed"


def test_errors_botocore_parses(api):
    with pytest.raises(ClientError) as ei:
        api.describe_transform_job(TransformJobName="nope")
    assert ei.value.response["Error"]["Code"] == "ResourceNotFound"
    assert isinstance(ei.value, api.exceptions.ResourceNotFound)
    with pytest.raises(ClientError) as ei:
        api.describe_model(ModelName="nope")
    assert ei.value.response["Error"]["Code"] == "ValidationException"
    assert "Could not find model" in ei.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as ei:
        api.stop_transform_job(TransformJobName="nope")
    assert ei.value.response["Error"]["Code"] == "ResourceNotFound"


def test_stop_and_delete_model(api, s3_root, model_tar, make_spec):
    storage = Storage()
    model_uri = join(s3_root, "models", "model.tar.gz")
    storage.write_bytes(model_uri, open(model_tar, "rb").read())
    storage.write_bytes(join(s3_root, "in", "slow.csv"), b"sleep0.5\n" * 40)
    api.create_model(ModelName="test-model", PrimaryContainer={"Image": "local", "ModelDataUrl": model_uri})
    api.create_transform_job(**make_spec("stop-job", join(s3_root, "in") + "/", join(s3_root, "out"),
                                         BatchStrategy="SingleRecord"))
    api.stop_transform_job(TransformJobName="stop-job")
    d = _wait(api, "stop-job")
    assert d["TransformJobStatus"] == "Stopped"
    assert list(storage.list(join(s3_root, "out") + "/")) == []
    api.delete_model(ModelName="test-model")
    with pytest.raises(ClientError, match="Could not find model"):
        api.describe_model(ModelName="test-model")


def test_sagemaker_core_resource_classes_work_against_it(api, s3_root, model_tar, make_spec):
    from sagemaker.core.resources import Model, TransformJob
    from sagemaker.core.utils.utils import SageMakerClient

    SageMakerClient.reset()  # its cached clients were built before AWS_ENDPOINT_URL_SAGEMAKER was set
    storage = Storage()
    model_uri = join(s3_root, "models", "model.tar.gz")
    storage.write_bytes(model_uri, open(model_tar, "rb").read())
    storage.write_bytes(join(s3_root, "in", "a.csv"), b"1,2\n")
    api.create_model(ModelName="test-model", PrimaryContainer={"Image": "local", "ModelDataUrl": model_uri})
    assert Model.get("test-model", region="eu-west-3").primary_container.model_data_url == model_uri
    api.create_transform_job(**make_spec("core-job", join(s3_root, "in") + "/", join(s3_root, "out")))
    job = TransformJob.get("core-job", region="eu-west-3")
    job.wait(poll=1, timeout=300)
    assert job.transform_job_status == "Completed"
    assert storage.read_bytes(join(s3_root, "out", "a.csv.out")) == b"3\n\n"


def test_local_paths_are_refused_over_the_api(api, tmp_path, make_spec, s3_root, model_tar):
    with pytest.raises(ClientError) as ei:
        api.create_model(ModelName="local-model", PrimaryContainer={"Image": "local", "ModelDataUrl": model_tar})
    assert ei.value.response["Error"]["Code"] == "ValidationException"
    model_uri = join(s3_root, "models", "model.tar.gz")
    Storage().write_bytes(model_uri, open(model_tar, "rb").read())
    api.create_model(ModelName="test-model", PrimaryContainer={"Image": "local", "ModelDataUrl": model_uri})
    with pytest.raises(ClientError, match="S3Uri.*does not match the service pattern"):
        api.create_transform_job(**make_spec("local-job", str(tmp_path), join(s3_root, "out")))


def test_sagemaker_api_with_only_a_port_runs_a_job_and_keeps_it_under_the_default_store(
        aws_env, s3_root, model_tar, make_spec, tmp_path, monkeypatch):
    """The README's command, nothing added: job state goes to configs/local.yaml's store.root
    (./data of the folder it starts in), it says so on its first line, and `velibcast
    transform-job list` from that folder finds the job."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("VELIBCAST_STATE_ROOT", raising=False)
    proc = subprocess.Popen([sys.executable, "-m", "velibcast.flows.cli", "sagemaker-api", "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        first = proc.stdout.readline()
        assert first.rstrip().endswith(f"job state in {tmp_path / 'data'}"), first
        monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER", first.split(" on ", 1)[1].split()[0])
        sm = boto3.client("sagemaker")
        storage = Storage()
        model_uri = join(s3_root, "models", "model.tar.gz")
        storage.write_bytes(model_uri, open(model_tar, "rb").read())
        storage.write_bytes(join(s3_root, "in", "a.csv"), b"st1@t,1,2,3\n")
        sm.create_model(ModelName="test-model", PrimaryContainer={"Image": "local", "ModelDataUrl": model_uri})
        sm.create_transform_job(**make_spec("default-state-job", join(s3_root, "in") + "/", join(s3_root, "out"),
                                            DataProcessing={"InputFilter": "$[1:]", "JoinSource": "Input"}))
        assert _wait(sm, "default-state-job")["TransformJobStatus"] == "Completed"
        assert _outputs(storage, join(s3_root, "out")) == {"/a.csv.out": b"st1@t,1,2,3,6\n"}
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    assert (tmp_path / "data" / "transform-jobs" / "default-state-job.json").is_file()
    listed = subprocess.run([sys.executable, "-m", "velibcast.flows.cli", "transform-job", "list"],
                            capture_output=True, text=True, check=True).stdout
    assert "default-state-job  Completed" in listed


def test_the_api_reads_models_from_the_runtime_it_drives(tmp_path, model_tar):
    """One model registry: a model the runtime holds is the one DescribeModel shows, and one
    DeleteModel removes is gone from the runtime."""
    api = SageMakerApi(Storage(), str(tmp_path / "state"))
    try:
        api.rt.create_model("m", model_tar, {"A": "1"}, execution_role_arn="arn:aws:iam::000000000000:role/r")
        d = api.call("DescribeModel", {"ModelName": "m"})
        assert d["ModelArn"] == api.rt.describe_model("m")["ModelArn"] and d["PrimaryContainer"] == {
            "ModelDataUrl": model_tar, "Environment": {"A": "1"}}
        assert d["ExecutionRoleArn"] == "arn:aws:iam::000000000000:role/r"
        api.call("DeleteModel", {"ModelName": "m"})
        with pytest.raises(ResourceNotFound):
            api.rt.describe_model("m")
    finally:
        api.close()


def test_the_api_uses_only_the_runtimes_public_interface():
    tree = ast.parse(Path(sagemaker_api.__file__).read_text())
    private = sorted({f"{ast.unparse(n.value)}.{n.attr}" for n in ast.walk(tree) if isinstance(n, ast.Attribute)
                      and n.attr.startswith("_") and not n.attr.startswith("__") and ast.unparse(n.value) != "self"})
    assert private == []
    assert not [n for n in ast.walk(tree) if isinstance(n, ast.Attribute) and n.attr == "_models"]
