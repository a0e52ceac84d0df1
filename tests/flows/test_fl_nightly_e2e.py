"""The nightly flow end to end on real data: local paths and S3 (moto server) give the same forecasts."""

import gzip
import io
import json

import pyarrow.parquet as pq
import pytest

from velibcast import storage as st
from velibcast.errors import DataError


def test_local_and_s3_give_identical_forecasts(tmp_path, s3_root, storage, trained_model, e2e):
    results = {}
    for name, root in (("local", str(tmp_path / "root")), ("s3", s3_root)):
        e2e.copy_snapshots(storage, root)
        res = e2e.run(e2e.config(tmp_path, root, trained_model["model_uri"]))
        table = pq.read_table(io.BytesIO(storage.read_bytes(res["forecast_parquet"])))
        m = json.loads(storage.read_text(res["manifest_uri"]))
        c = m["counts"]
        assert table.num_rows == 3 * c["windows_emitted"] == c["forecast_rows"]
        assert c["records_sent"] == c["predictions_written"] == c["windows_emitted"] > 1000
        assert c["windows_emitted"] + c["windows_skipped"] == c["stations_seen"] * c["origins"]
        assert m["transform_job"]["spec"]["DataProcessing"]["InputFilter"] == m["transform_input_layout"]["input_filter"]
        ce = m["cost_estimate"]   # the job ran for some time and wrote objects: both parts of the bill are > 0
        assert ce["billed_seconds"] > 0 and ce["s3_puts"] > 0
        assert ce["total"] == pytest.approx(ce["hourly_price"] * ce["instance_count"] * ce["billed_seconds"] / 3600
                                            + ce["s3_requests"], abs=1e-5)
        results[name] = table.drop_columns(["run_id"]).to_pylist()
    assert results["local"] == results["s3"]


def test_rerun_reuses_completed_stages_and_replaces_the_date(tmp_path, storage, trained_model, e2e):
    root = str(tmp_path / "root")
    e2e.copy_snapshots(storage, root)
    cfg = e2e.config(tmp_path, root, trained_model["model_uri"])
    first = e2e.run(cfg)
    second = e2e.run(cfg)
    assert first["run_id"] == second["run_id"]
    assert first["reused"] is None
    assert "reused windows and transform" in second["reused"] and "no new job was billed" in second["reused"]
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
def test_bad_snapshots_fail_loudly_or_are_counted(tmp_path, storage, trained_model, corrupt, e2e):
    root = str(tmp_path / "root")
    e2e.copy_snapshots(storage, root, corrupt)
    strict = e2e.config(tmp_path, root, trained_model["model_uri"], name="strict",
                     snapshots={"on_bad_record": "fail", "on_bad_object": "fail"})
    with pytest.raises(DataError) as exc:
        e2e.run(strict)
    assert "2022-05-26T04" in str(exc.value)
    if corrupt is _bad_line:
        assert "line 5" in str(exc.value)
    lenient = e2e.config(tmp_path, root, trained_model["model_uri"], name="lenient")
    res = e2e.run(lenient)
    m = json.loads(storage.read_text(res["manifest_uri"]))
    assert json.dumps(m["skips"]).count("2022-05-26T04") >= 1


def test_progress_reaches_100_in_prefect(tmp_path, storage, trained_model, e2e):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    root = str(tmp_path / "root")
    e2e.copy_snapshots(storage, root)
    res = e2e.run(e2e.config(tmp_path, root, trained_model["model_uri"]))
    key = "run-progress-" + res["run_id"].split("_")[0].lower()
    with get_client(sync_client=True) as client:
        # earlier runs of the same range (other tests, some failing on purpose) share the key: take this run's
        arts = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])),
                                     sort=ArtifactSort.CREATED_DESC, limit=1)
    assert arts and arts[0].type == "progress" and float(arts[0].data) == 100.0
