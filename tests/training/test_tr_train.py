"""train_model end to end on a slice of the bundled real snapshots, in a local store and in S3."""

import gzip
import json
from datetime import datetime, timedelta
from pathlib import Path

from velibcast import constants as C
from velibcast.storage import join
from velibcast.timeutil import UTC, parse_key_time
from velibcast.training.evaluate import evaluate_model
from velibcast.training.package import extract
from velibcast.training.train import train_model
from velibcast.transform_code import inference

REPO = Path(__file__).resolve().parents[2]
SNAPSHOTS = REPO / "sample_data" / "velib" / "snapshots"
START = datetime(2022, 5, 23, 0, tzinfo=UTC)
END = datetime(2022, 5, 24, 23, tzinfo=UTC)
N_STATIONS = 25


def seed_store(storage, root):
    """The snapshots of [START - 4h, END + 4h], cut to the first stations, in root's snapshot layout."""
    keep = None
    for path in sorted(SNAPSHOTS.glob("*.jsonl.gz")):
        ts = parse_key_time(path.name[:20])
        if not (START.timestamp() - 4 * 3600 <= ts.timestamp() <= END.timestamp() + 4 * 3600):
            continue
        lines = gzip.decompress(path.read_bytes()).splitlines()
        if keep is None:
            keep = {json.loads(ln)["stationcode"] for ln in lines[:N_STATIONS]}
        body = b"\n".join(ln for ln in lines if json.loads(ln)["stationcode"] in keep) + b"\n"
        storage.write_bytes(join(root, C.SNAPSHOT_PREFIX, path.name), gzip.compress(body, mtime=0))


def test_train_model_from_snapshot_store(any_root, storage, monkeypatch, tmp_path):
    monkeypatch.setattr(C, "GBM_ROUNDS", 10)
    seed_store(storage, any_root)
    lines = []
    info = train_model(storage, any_root, START, END, any_root, seed=None, backtest=False, progress=lines.append)
    assert info["model_uri"] == f"{any_root}/models/{info['version']}/model.tar.gz"
    assert any(line.startswith("gbm T+2..3h round 10/10") and line.endswith("s elapsed") for line in lines)
    model_dir = extract(storage.read_bytes(info["model_uri"]), tmp_path / "m")
    meta = json.loads((model_dir / "metadata.json").read_text())
    assert meta["training_data"]["stations"] == N_STATIONS
    assert (meta["training_data"]["start"], meta["training_data"]["end"]) == ("2022-05-23T00:00:00Z",
                                                                              "2022-05-24T23:00:00Z")
    model = inference.model_fn(str(model_dir))
    assert model.version == info["version"]

    ev = evaluate_model(storage, info["model_uri"], any_root, END - timedelta(hours=8), END - timedelta(hours=3))
    assert ev["model"] == info["version"]
    assert (ev["first_origin"], ev["last_origin"]) == ("2022-05-24T15:00Z", "2022-05-24T20:00Z")
    assert [d["in_sample"] for d in ev["by_day"]] == [True], "those hours are inside the training span"
    assert ev["unknown_station_samples"] == 0 and ev["samples"] > 0
    (day,) = ev["by_day"]
    assert set(day["mae"]) == {"model", "persistence", "same_day_type"} and len(day["mae"]["model"]) == 24
    assert 0 <= day["coverage_p10_p90"][0] <= 1 and set(day["brier"]) == {"p_empty", "p_full"}


def test_train_cli_is_registered():
    import argparse

    from velibcast.training import cli

    p = argparse.ArgumentParser()
    cli.register(p.add_subparsers(dest="command"))
    args = p.parse_args(["train", "--start", "2022-05-23T00:00Z", "--end", "2022-05-25T22:00Z", "--out", "/tmp/x"])
    assert args.func is cli.cmd_train
    assert args.start == START and args.seed == C.TRAIN_SEED
    assert args.family == C.TRAIN_FAMILY == "gbm" and args.backtest


def test_train_end_is_half_open_and_its_help_says_so():
    import argparse

    from velibcast.cli_types import RANGE_CONVENTION
    from velibcast.training import cli

    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="command")
    cli.register(sub)
    help_text = " ".join(sub.choices["train"].format_help().split())
    assert RANGE_CONVENTION in help_text and "included:" not in help_text
