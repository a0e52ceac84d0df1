"""Fixtures for the Batch Transform tests: a model.tar.gz built from tests' model_code/."""

import io
import json
import tarfile
from pathlib import Path

import pytest

from tests.batch_transform.bt_helpers import job_spec
from velibcast.batch_transform.local import LocalRuntime
from velibcast.storage import Storage

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


@pytest.fixture
def rt(tmp_path, model_tar):
    """A local runtime with the test model created as `test-model`."""
    runtime = LocalRuntime(Storage(), str(tmp_path / "state"))
    runtime.create_model("test-model", model_tar)
    yield runtime
    runtime.close()
