"""model.tar.gz has SageMaker's structure, needs no pickle, and is reproducible."""

import io
import json
import tarfile
from datetime import datetime

import pytest

from velibcast import constants as C
from velibcast.storage import Storage
from velibcast.timeutil import UTC
from velibcast.training import package
from velibcast.training.synthetic import make_grid, untrained_archive
from velibcast.training.train import train_on_grid

START = datetime(2022, 5, 23, tzinfo=UTC)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    grid = make_grid(8, 24 * 3, START, seed=1)
    out = tmp_path_factory.mktemp("gbm")
    quiet = dict(family="gbm", backtest=False, progress=lambda line: None)
    return [train_on_grid(grid, Storage(), str(out / k), START, grid.hours[-1], seed=7, **quiet) for k in "ab"]


def members(archive: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        return {m.name: f.read() for m in tar.getmembers() if m.isfile() and (f := tar.extractfile(m)) is not None}


def test_sagemaker_structure(trained):
    r, _ = trained
    assert r["model_uri"].endswith(f"/models/{r['version']}/model.tar.gz")
    with open(r["model_uri"], "rb") as f:
        names = set(members(f.read()))
    assert {"config.json", "trees.json", "profiles.json", "event_profiles.json", "distribution.json", "station_mappings.json",
            "metadata.json", "code/inference.py", "code/requirements.txt", "code/velib_features.py",
            "code/velib_gbm.py", "code/velib_profile.py", "code/velib_distribution.py"} <= names
    assert all("/" not in n or n.startswith("code/") for n in names)


def test_same_data_config_seed_give_same_version_and_archive(trained):
    r1, r2 = trained
    assert r1["version"] == r2["version"] and r1["version"].startswith("gbm-20220525-")
    with open(r1["model_uri"], "rb") as a, open(r2["model_uri"], "rb") as b:
        m1, m2 = members(a.read()), members(b.read())
    # metadata.json differs only by the measured training times
    assert {k: v for k, v in m1.items() if k != "metadata.json"} == {k: v for k, v in m2.items() if k != "metadata.json"}


def test_no_artifact_needs_pickle(trained):
    with open(trained[0]["model_uri"], "rb") as f:
        files = members(f.read())
    for name, data in files.items():
        if not name.startswith("code/"):
            assert name.endswith(".json"), f"{name}: every artifact must be JSON"
            json.loads(data)


def test_metadata_holds_version_span_and_calibration(trained):
    r, _ = trained
    with open(r["model_uri"], "rb") as f:
        meta = json.loads(members(f.read())["metadata.json"])
    assert meta["version"] == r["version"]
    assert meta["training_data"]["start"] == "2022-05-23T00:00:00Z"
    assert meta["training_data"]["end"] == "2022-05-25T23:00:00Z"
    cal = meta["metrics"]["fit"]["calibration"]
    assert cal["held_out_origins"] > 0 and cal["first_held_out_origin"] > meta["training_data"]["start"]


def test_version_is_a_valid_sagemaker_name():
    import re

    v = package.model_version(START, START, {"family": "gbm"}, {"b": 2}, 1)
    assert re.fullmatch(C.MODEL_NAME_PATTERN, v) and len(v) <= 63


def test_archive_writes_to_s3(storage, s3_root, tmp_path):
    archive = untrained_archive(5)
    uri = package.write_model(storage, s3_root, "gbm-test-0", archive)
    assert uri == f"{s3_root}/models/gbm-test-0/model.tar.gz"
    assert storage.read_bytes(uri) == archive
