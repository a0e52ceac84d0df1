"""Faults during a run: nothing lost, nothing duplicated, and the error says what happened.

S3 5xx/throttling is covered at the storage layer in tests/faults/.
"""

import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time

import pyarrow.parquet as pq
import pytest

from velibcast import storage as st
from velibcast.errors import TerminalError


def _patched_model(src_uri: str, dest: str, extra_code: str) -> str:
    """A copy of a model.tar.gz whose code/inference.py misbehaves as `extra_code` says."""
    with tarfile.open(src_uri, "r:gz") as src, tarfile.open(dest, "w:gz") as out:
        for m in src.getmembers():
            f = src.extractfile(m)
            data = f.read() if f is not None else None
            if data is not None and m.name.removeprefix("./") == "code/inference.py":
                data += ("\n" + extra_code).encode()
                m.size = len(data)
            out.addfile(m, io.BytesIO(data) if data is not None else None)
    return dest


CRASH_ON_SECOND_REQUEST = """
import os as _os
_calls = [0]
_orig_predict_fn = predict_fn
def predict_fn(data, model):
    _calls[0] += 1
    if _calls[0] == 2:
        _os._exit(17)  # the container dies mid-job
    return _orig_predict_fn(data, model)
"""

SLOW_PREDICT = """
import time as _time
_orig_predict_fn = predict_fn
def predict_fn(data, model):
    _time.sleep(3)
    return _orig_predict_fn(data, model)
"""


@pytest.mark.parametrize("fault, settings, expect", [
    (CRASH_ON_SECOND_REQUEST, {"batch_strategy": "SingleRecord", "invocations_max_retries": 0}, "part-"),
    (SLOW_PREDICT, {"invocations_timeout_s": 1, "invocations_max_retries": 1}, "part-"),
])
def test_container_faults_fail_the_run_clearly_and_publish_nothing(tmp_path, storage, trained_model, e2e,
                                                                  fault, settings, expect):
    root = str(tmp_path / "root")
    e2e.copy_snapshots(storage, root)
    model = _patched_model(trained_model["model_uri"], str(tmp_path / "model.tar.gz"), fault)
    cfg = e2e.config(tmp_path, root, model, transform=settings)
    with pytest.raises(TerminalError) as exc:
        e2e.run(cfg)
    msg = str(exc.value)
    assert "ended Failed" in msg and expect in msg
    # nothing half-published: no forecast partition, no manifest claiming success
    assert not list(storage.list(st.join(root, "forecasts") + "/"))
    assert not [o for o in storage.list(st.join(root, "runs") + "/") if o.uri.endswith("manifest.json")]


def _job_states(root):
    d = os.path.join(root, "transform-jobs")
    if not os.path.isdir(d):
        return {}
    out = {}
    for name in os.listdir(d):
        if name.endswith(".json"):
            with open(os.path.join(d, name)) as f:
                out[name[:-5]] = json.load(f)["TransformJobStatus"]
    return out


def test_sigkill_during_transform_then_rerun_completes_once(tmp_path, storage, trained_model, e2e):
    root = str(tmp_path / "root")
    e2e.copy_snapshots(storage, root)
    # SingleRecord makes the transform long enough to be killed in the middle of it.
    cfg = e2e.config(tmp_path, root, trained_model["model_uri"],
                     transform={"batch_strategy": "SingleRecord", "max_concurrent_transforms": 1})
    # the child starts its own ephemeral Prefect server: 20 s by default is too short on a loaded 2-core machine
    env = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120"}
    env.pop("PREFECT_API_URL", None)
    proc = subprocess.Popen([sys.executable, "-m", "velibcast.flows.cli", "run", "--config", cfg,
                             "--start", e2e.START, "--end", e2e.END],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 240
        while time.time() < deadline and "InProgress" not in _job_states(root).values():
            assert proc.poll() is None, "the run ended before its transform could be killed"
            time.sleep(0.2)
        time.sleep(1.0)
        assert "InProgress" in _job_states(root).values()
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the flow and its model servers die at once
        proc.wait()
    killed = _job_states(root)
    assert list(killed.values()) == ["InProgress"]

    res = e2e.run(cfg)
    states = _job_states(root)
    assert len(states) == 2 and sorted(states.values()) == ["Completed", "InProgress"]
    assert res["counts"]["forecast_rows"] == 3 * res["counts"]["windows_emitted"]
    table = pq.read_table(io.BytesIO(storage.read_bytes(res["forecast_parquet"])))
    keys = set(zip(table.column("station_code").to_pylist(), table.column("origin_ts").to_pylist(),
                   table.column("horizon_h").to_pylist()))
    assert len(keys) == table.num_rows  # nothing duplicated
    # the windows stage completed before the kill and was reused, not recomputed
    rec = json.loads(storage.read_text(st.join(root, "runs", res["run_id"], "stages", "windows.json")))
    assert rec["windows_emitted"] == res["counts"]["windows_emitted"]
