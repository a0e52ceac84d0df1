"""Shared fixtures: a real S3 protocol server (moto) on 127.0.0.1, reached via AWS_ENDPOINT_URL."""

import uuid

import pytest


@pytest.fixture(scope="session")
def moto_endpoint():
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def aws_env(moto_endpoint, monkeypatch):
    """Point the standard AWS chain at the moto server, as a user would with any S3-compatible endpoint."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-3")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return moto_endpoint


@pytest.fixture
def s3_root(aws_env):
    """A fresh bucket on the moto server; returns s3://<bucket>/root."""
    import boto3

    bucket = f"velib-{uuid.uuid4().hex[:12]}"
    boto3.client("s3").create_bucket(
        Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-3"}
    )
    return f"s3://{bucket}/root"


@pytest.fixture
def sagemaker_api(aws_env, tmp_path, monkeypatch):
    """`velibcast sagemaker-api` in its own process, S3 on the moto server; the standard AWS
    chain points SageMaker clients at it (AWS_ENDPOINT_URL_SAGEMAKER). Yields its URL."""
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "velibcast.flows.cli", "sagemaker-api", "--port", "0",
                             "--state-root", str(tmp_path / "sagemaker-api-state")],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        url = proc.stdout.readline().split(" on ", 1)[1].split()[0]
        monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER", url)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=60)


@pytest.fixture
def storage():
    from velibcast.storage import Storage

    return Storage()


@pytest.fixture(params=["local", "s3"])
def any_root(request, tmp_path):
    """The same test against a local path and against S3 on the moto server."""
    if request.param == "local":
        return str(tmp_path / "root")
    return request.getfixturevalue("s3_root")
