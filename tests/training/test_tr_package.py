"""model.tar.gz has SageMaker's structure, needs no pickle, and is reproducible."""

import io
import json
import tarfile
from datetime import datetime

import pytest
import torch

from velibcast import constants as C
from velibcast.timeutil import UTC
from velibcast.training import package
from velibcast.training.synthetic import make_grid, untrained_archive
from velibcast.training.train import train_on_grid

START = datetime(2022, 5, 23, tzinfo=UTC)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, monkeypatch_module):
    monkeypatch_module.setattr(C, "TRAIN_MAX_EPOCHS", 1)
    grid = make_grid(8, 24 * 2 + 12, START, seed=1)
    out = tmp_path_factory.mktemp("out")
    from velibcast.storage import Storage

    quiet = dict(family="lstm", backtest=False, progress=lambda line: None)
    r1 = train_on_grid(grid, Storage(), str(out / "a"), START, grid.hours[-1], seed=7, max_seconds=60, **quiet)
    r2 = train_on_grid(grid, Storage(), str(out / "b"), START, grid.hours[-1], seed=7, max_seconds=60, **quiet)
    return r1, r2


@pytest.fixture(scope="module")
def trained_gbm(tmp_path_factory):
    grid = make_grid(8, 24 * 2 + 12, START, seed=1)
    out = tmp_path_factory.mktemp("gbm")
    from velibcast.storage import Storage

    quiet = dict(family="gbm", backtest=False, progress=lambda line: None)
    return [train_on_grid(grid, Storage(), str(out / k), START, grid.hours[-1], seed=7, **quiet) for k in "ab"]


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def members(archive: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        return {m.name: f.read() for m in tar.getmembers() if m.isfile() and (f := tar.extractfile(m)) is not None}


def test_sagemaker_structure(trained):
    r, _ = trained
    assert r["model_uri"].endswith(f"/models/{r['version']}/model.tar.gz")
    with open(r["model_uri"], "rb") as f:
        names = set(members(f.read()))
    assert {"model.pth", "config.json", "scaler.json", "station_mappings.json", "metadata.json",
            "code/inference.py", "code/requirements.txt", "code/velib_features.py", "code/velib_lstm.py"} <= names
    assert all("/" not in n or n.startswith("code/") for n in names)


def test_gbm_archive_is_json_trees_and_reproducible(trained_gbm):
    r1, r2 = trained_gbm
    assert r1["version"] == r2["version"] and r1["version"].startswith("gbm-20220525-")
    with open(r1["model_uri"], "rb") as a, open(r2["model_uri"], "rb") as b:
        m1, m2 = members(a.read()), members(b.read())
    assert "trees.json" in m1 and "model.pth" not in m1 and "code/velib_gbm.py" in m1
    assert {k: v for k, v in m1.items() if k != "metadata.json"} == {k: v for k, v in m2.items() if k != "metadata.json"}


@pytest.mark.parametrize("family", ["lstm", "gbm"])
def test_no_artifact_needs_pickle(trained, trained_gbm, family):
    r = trained[0] if family == "lstm" else trained_gbm[0]
    with open(r["model_uri"], "rb") as f:
        files = members(f.read())
    for name, data in files.items():
        if name.startswith("code/"):
            continue
        if name == "model.pth":
            state = torch.load(io.BytesIO(data), weights_only=True)
            assert all(isinstance(v, torch.Tensor) for v in state.values())
        else:
            assert name.endswith(".json"), f"{name}: every artifact but the weights must be JSON"
            json.loads(data)


def test_same_data_config_seed_give_same_version_and_weights(trained):
    r1, r2 = trained
    assert r1["version"] == r2["version"]
    assert r1["version"].startswith("lstm-20220525-")
    with open(r1["model_uri"], "rb") as a, open(r2["model_uri"], "rb") as b:
        m1, m2 = members(a.read()), members(b.read())
    # metadata.json differs only by the measured training times
    assert {k: v for k, v in m1.items() if k != "metadata.json"} == {k: v for k, v in m2.items() if k != "metadata.json"}
    assert r1["metrics"]["mae_test"] == r2["metrics"]["mae_test"]


def test_metadata_holds_version_span_and_baseline_metrics(trained):
    r, _ = trained
    with open(r["model_uri"], "rb") as f:
        meta = json.loads(members(f.read())["metadata.json"])
    assert meta["version"] == r["version"]
    assert meta["training_data"]["start"] == "2022-05-23T00:00:00Z"
    mae = meta["metrics"]["mae_test"]
    assert set(mae) == {"model", "persistence", "seasonal_naive"}
    assert all(len(v) == 3 for v in mae.values())


def test_version_is_a_valid_sagemaker_name():
    import re

    v = package.model_version(START, START, {"a": 1}, {"b": 2}, 1)
    assert re.fullmatch(C.MODEL_NAME_PATTERN, v) and len(v) <= 63


def test_archive_writes_to_s3(storage, s3_root, tmp_path):
    archive = untrained_archive(5)
    uri = package.write_model(storage, s3_root, "lstm-test-0", archive)
    assert uri == f"{s3_root}/models/lstm-test-0/model.tar.gz"
    assert storage.read_bytes(uri) == archive
