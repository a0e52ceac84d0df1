"""Fixtures for the Batch Transform tests: a model.tar.gz built from tests' model_code/."""

import io
import json
import tarfile
from pathlib import Path

import pytest

MODEL_CODE = Path(__file__).parent / "model_code"


def build_model_tar(scale: float = 1) -> bytes:
    """SageMaker's layout: artifacts at the root, code/inference.py and its siblings."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        cfg = json.dumps({"scale": scale}).encode()
        info = tarfile.TarInfo("config.json")
        info.size = len(cfg)
        tar.addfile(info, io.BytesIO(cfg))
        for f in sorted(MODEL_CODE.glob("*.py")):
            tar.add(f, arcname=f"code/{f.name}")
    return buf.getvalue()


@pytest.fixture(scope="session")
def model_tar(tmp_path_factory) -> str:
    p = tmp_path_factory.mktemp("model") / "model.tar.gz"
    p.write_bytes(build_model_tar())
    return str(p)


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory, model_tar) -> str:
    d = tmp_path_factory.mktemp("model-dir")
    with tarfile.open(model_tar) as tar:
        tar.extractall(d, filter="data")
    return str(d)


@pytest.fixture(scope="session")
def make_spec():
    return job_spec


def job_spec(name: str, input_uri: str, output_uri: str, **over) -> dict:
    """A CreateTransformJob request with the nightly's shape; keyword groups override."""
    spec = {
        "TransformJobName": name,
        "ModelName": "test-model",
        "TransformInput": {
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": input_uri}},
            "ContentType": "text/csv",
            "SplitType": "Line",
        },
        "TransformOutput": {"S3OutputPath": output_uri, "Accept": "text/csv", "AssembleWith": "Line"},
        "TransformResources": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1},
    }
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(spec.get(k), dict):
            spec[k] = {**spec[k], **v}
        else:
            spec[k] = v
    return spec
