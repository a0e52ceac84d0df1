"""The nightly flow end to end on real data: local paths and S3 (moto server) give the same forecasts."""

import gzip
import io
import json
from datetime import datetime, timezone

import pyarrow.parquet as pq
import pytest
import yaml

from velibcast import storage as st
from velibcast.config import REPO_ROOT

SAMPLE = REPO_ROOT / "sample_data" / "velib" / "snapshots"
# A short range keeps the suite fast; the demo runs a whole day.
START, END = "2022-05-26T05:00Z", "2022-05-26T08:00Z"
FIRST_CAPTURE, LAST_CAPTURE = "2022-05-25T03", "2022-05-26T09"


def _copy_snapshots(storage, root, transform=None):
    n = 0
    for p in sorted(SAMPLE.rglob("*.jsonl.gz")):
        if not (FIRST_CAPTURE <= p.name[:13] <= LAST_CAPTURE):
            continue
        data = p.read_bytes()
        if transform:
            data = transform(p.name, data)
        storage.write_bytes(st.join(root, "velib", "snapshots", p.name), data)
        n += 1
    assert n > 24, "the bundled sample must cover the test range"


@pytest.fixture(scope="session")
def trained_model(tmp_path_factory):
    from velibcast.storage import Storage
    from velibcast.training.train import train_model

    root = tmp_path_factory.mktemp("model-root")
    info = train_model(Storage(), str(SAMPLE.parents[1]),
                       datetime(2022, 5, 23, tzinfo=timezone.utc), datetime(2022, 5, 25, 12, tzinfo=timezone.utc),
                       str(root), seed=1, max_seconds=8)
    return info


def _config(tmp_path, root, model_uri, name="cfg", **extra):
    cfg = {"store": {"root": root}, "model": {"uri": model_uri},
           "transform": {"backend": "local", "max_concurrent_transforms": 2}}
    for k, v in extra.items():
        cfg.setdefault(k, {}).update(v)
    p = tmp_path / f"{name}-{abs(hash(root))}.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return str(p)


def _run(cfg_path):
    from velibcast.flows.nightly import nightly

    return nightly(config=cfg_path, start=datetime.fromisoformat(START.replace("Z", "+00:00")),
                   end=datetime.fromisoformat(END.replace("Z", "+00:00")))


def test_local_and_s3_give_identical_forecasts(tmp_path, s3_root, storage, trained_model):
    results = {}
    for name, root in (("local", str(tmp_path / "root")), ("s3", s3_root)):
        _copy_snapshots(storage, root)
        res = _run(_config(tmp_path, root, trained_model["model_uri"]))
        table = pq.read_table(io.BytesIO(storage.read_bytes(res["forecast_parquet"])))
        m = json.loads(storage.read_text(res["manifest_uri"]))
        c = m["counts"]
        assert table.num_rows == 3 * c["windows_emitted"] == c["forecast_rows"]
        assert c["records_sent"] == c["predictions_written"] == c["windows_emitted"] > 1000
        assert c["windows_emitted"] + c["windows_skipped"] == c["stations_seen"] * c["origins"]
        assert m["transform_job"]["spec"]["DataProcessing"]["InputFilter"] == m["transform_input_layout"]["input_filter"]
        assert m["cost_estimate"]["total"] >= 0
        results[name] = table.drop_columns(["run_id"]).to_pylist()
    assert results["local"] == results["s3"]


def test_rerun_reuses_completed_stages_and_replaces_the_date(tmp_path, storage, trained_model):
    root = str(tmp_path / "root")
    _copy_snapshots(storage, root)
    cfg = _config(tmp_path, root, trained_model["model_uri"])
    first = _run(cfg)
    second = _run(cfg)
    assert first["run_id"] == second["run_id"]
    attempts = list(storage.list(st.join(root, "runs", first["run_id"], "attempts") + "/"))
    assert len(attempts) == 2
    jobs = list(storage.list(st.join(root, "transform-jobs") + "/"))
    assert len([j for j in jobs if j.uri.endswith(".json")]) == 1  # the second run reused the job


def _truncate_one(name, data):
    return data[: len(data) // 2] if name.startswith("2022-05-26T04") else data


def _bad_line(name, data):
    if not name.startswith("2022-05-26T04"):
        return data
    lines = gzip.decompress(data).split(b"\n")
    lines[4] = b'{"stationcode": "16107", "numbikesavailable": "many"'
    return gzip.compress(b"\n".join(lines))


@pytest.mark.parametrize("corrupt", [_truncate_one, _bad_line])
def test_bad_snapshots_fail_loudly_or_are_counted(tmp_path, storage, trained_model, corrupt):
    root = str(tmp_path / "root")
    _copy_snapshots(storage, root, corrupt)
    strict = _config(tmp_path, root, trained_model["model_uri"], name="strict",
                     snapshots={"on_bad_record": "fail", "on_bad_object": "fail"})
    with pytest.raises(Exception) as exc:
        _run(strict)
    assert "2022-05-26T04" in str(exc.value)
    if corrupt is _bad_line:
        assert "line 5" in str(exc.value)
    lenient = _config(tmp_path, root, trained_model["model_uri"], name="lenient")
    res = _run(lenient)
    m = json.loads(storage.read_text(res["manifest_uri"]))
    assert json.dumps(m["skips"]).count("2022-05-26T04") >= 1
