"""`--force` recomputes from the snapshots as they are now (the transform job's identity
includes the digest of its input shards, flows/backends.run_transform_job).

Why: after correcting the snapshots, `run --force` republished the previous predictions
byte for byte (the Completed job of the run_id was reused), and when the set of windows
changed it failed with "record_id ... was never sent".
"""

import gzip
import json
import os
from datetime import date

from velibcast import storage as st
from velibcast.flows import forecasts

DROPPED = "16107"  # a station the correction removes: the set of windows changes too


def _corrected(name, data):
    out = []
    for line in gzip.decompress(data).splitlines():
        if not line.strip():
            continue
        r = json.loads(line)
        if r.get("stationcode") == DROPPED:
            continue
        r["numbikesavailable"] = r["mechanical"] = r["ebike"] = 0
        out.append(json.dumps(r).encode())
    return gzip.compress(b"\n".join(out) + b"\n")


def test_force_after_correcting_the_snapshots_equals_a_fresh_store(tmp_path, storage, trained_model, e2e):
    d = date(2022, 5, 26)
    root = str(tmp_path / "root")
    e2e.copy_snapshots(storage, root)
    cfg = e2e.config(tmp_path, root, trained_model["model_uri"])
    first = e2e.run(cfg)
    before = forecasts.read_partition(storage, root, "evaluation", d)
    assert DROPPED in set(before.column("station_code").to_pylist())

    e2e.copy_snapshots(storage, root, _corrected)  # the corrected store, same keys
    forced = e2e.run(cfg, force=True)
    assert forced["run_id"] == first["run_id"]

    fresh_root = str(tmp_path / "fresh")
    e2e.copy_snapshots(storage, fresh_root, _corrected)
    fresh = e2e.run(e2e.config(tmp_path, fresh_root, trained_model["model_uri"], name="fresh"))

    after = e2e.published(storage, root)[d][0]
    expected = e2e.published(storage, fresh_root)[d][0]
    assert after.num_rows == forced["counts"]["forecast_rows"] == fresh["counts"]["forecast_rows"]
    assert after.to_pylist() == expected.to_pylist()
    assert after.to_pylist() != before.to_pylist()
    assert DROPPED not in set(after.column("station_code").to_pylist())
    # two jobs for two sets of inputs; the manifest names the inputs it was computed from
    jobs = [n for n in os.listdir(os.path.join(root, "transform-jobs")) if n.endswith(".json")]
    assert len(jobs) == 2
    m = json.loads(storage.read_text(forced["manifest_uri"]))
    w = json.loads(storage.read_text(st.join(root, "runs", forced["run_id"], "stages", "windows.json")))
    assert m["transform_job"]["input_digest"] == w["input_digest"]
    assert m["parameters"]["force"] is True


def test_a_rerun_with_the_same_inputs_reuses_its_job(tmp_path, storage, trained_model, e2e):
    root = str(tmp_path / "root")
    e2e.copy_snapshots(storage, root)
    cfg = e2e.config(tmp_path, root, trained_model["model_uri"])
    e2e.run(cfg)
    e2e.run(cfg, force=True)  # recomputes the windows: same bytes, same digest, same job
    jobs = [n for n in os.listdir(os.path.join(root, "transform-jobs")) if n.endswith(".json")]
    assert len(jobs) == 1
    e2e.published(storage, root)
