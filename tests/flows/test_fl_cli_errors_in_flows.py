"""An error raised inside a Prefect run reaches the console as the command's one clean line (the
traceback only with --debug), and what can be checked before the run is: an out-of-range
transform setting, a model.tar.gz that would write outside its folder."""

import gzip
import io
import json
import os
import subprocess
import sys
import tarfile

from prefect.settings import PREFECT_API_URL

from tests.flows.test_fl_cli import config, user_error, velibcast
from tests.flows.test_fl_faults import _patched_model

TARGET = "2022-05-26T06-46-26Z.jsonl.gz"   # a capture inside the run's range


def _bad_record(name, data):
    """One record of TARGET with a latitude far outside Paris, on its 4th line."""
    if name != TARGET:
        return data
    lines = gzip.decompress(data).rstrip(b"\n").split(b"\n")
    rec = json.loads(lines[3])
    rec["coordonnees_geo"] = {**rec["coordonnees_geo"], "lat": 1000}
    lines[3] = json.dumps(rec).encode()
    return gzip.compress(b"\n".join(lines) + b"\n")


def _env(own_server: bool) -> dict:
    """The command's environment: with `own_server` it starts its temporary Prefect server, as a
    user's does; else it runs against the session's server (PREFECT_API_URL), which saves a start."""
    env = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120"}
    env.pop("PREFECT_API_URL", None)
    return env if own_server else {**env, "PREFECT_API_URL": PREFECT_API_URL.value()}


def _run_cli(tmp_path, cfg, e2e, *extra, own_server=False):
    return subprocess.run([sys.executable, "-m", "velibcast.flows.cli", *extra, "run", "--config", cfg,
                           "--start", e2e.START, "--end", e2e.END], cwd=tmp_path, env=_env(own_server),
                          capture_output=True, text=True, timeout=600)


def test_an_error_inside_the_flow_prints_its_line_without_a_traceback_unless_debug(tmp_path, storage,
                                                                                    trained_model, e2e):
    root = str(tmp_path / "root")
    e2e.copy_snapshots(storage, root, _bad_record)
    cfg = e2e.config(tmp_path, root, trained_model["model_uri"], snapshots={"on_bad_record": "fail"})
    r = _run_cli(tmp_path, cfg, e2e, own_server=True)
    assert r.returncode == 2, r.stderr[-3000:]
    assert "Traceback" not in r.stderr and 'File "' not in r.stderr, r.stderr[-3000:]
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and TARGET in last and "line 4" in last, last
    assert r.stderr.count(TARGET + " line 4") >= 1

    debug = _run_cli(tmp_path, cfg, e2e, "--debug")
    assert debug.returncode == 2 and "Traceback" in debug.stderr
    assert debug.stderr.strip().splitlines()[-1] == last


def test_a_product_runs_error_inside_the_flow_prints_its_line_without_a_traceback(tmp_path, storage, trained_model,
                                                                                   e2e):
    root = str(tmp_path / "root")
    e2e.copy_snapshots(storage, root, _bad_record)
    cfg = e2e.config(tmp_path, root, trained_model["model_uri"], snapshots={"on_bad_record": "fail"})
    r = subprocess.run([sys.executable, "-m", "velibcast.flows.cli", "run", "--config", cfg, "--product", "nowcast",
                        "--as-of", "2022-05-26T07:10Z"], cwd=tmp_path, env=_env(own_server=False),
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 2, r.stderr[-3000:]
    assert "Traceback" not in r.stderr and 'File "' not in r.stderr, r.stderr[-3000:]
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and TARGET in last and "line 4" in last, last


def test_an_instance_count_out_of_range_fails_before_prefect(tmp_path):
    cfg = config(tmp_path, {"store": {"root": str(tmp_path / "store")}, "transform": {"instance_count": -3}})
    user_error(velibcast("run", "--run-date", "2022-05-26", "--config", cfg, cwd=tmp_path), cfg,
               "transform.instance_count=-3", "TransformResources.InstanceCount", "out of range")



def _traversal_model(src: str, dest) -> str:
    """A copy of a working model.tar.gz with one more member that would land outside its folder."""
    out = io.BytesIO()
    with tarfile.open(src, "r:gz") as tar, tarfile.open(fileobj=out, mode="w:gz") as dst:
        for m in tar.getmembers():
            dst.addfile(m, tar.extractfile(m) if m.isfile() else None)
        evil = tarfile.TarInfo("code/../../escaped.py")
        evil.size = 3
        dst.addfile(evil, io.BytesIO(b"x=1"))
    dest.write_bytes(out.getvalue())
    return str(dest)


def test_a_model_tarball_with_a_path_leaving_its_folder_fails_before_prefect(tmp_path, trained_model):
    model = _traversal_model(trained_model["model_uri"], tmp_path / "model.tar.gz")
    cfg = config(tmp_path, {"store": {"root": str(tmp_path / "store")}, "model": {"uri": model}})
    user_error(velibcast("run", "--run-date", "2022-05-26", "--config", cfg, cwd=tmp_path), model,
               "code/../../escaped.py", "velibcast train")


ABOVE_INT64 = """
_orig_output_fn = output_fn
def output_fn(prediction, accept):
    counts, unknown, batch = prediction
    return _orig_output_fn((counts.astype(object) * 0 + 2 ** 70, unknown, batch), accept)
"""


def test_a_model_output_above_int64_exits_2_with_its_line(tmp_path, storage, trained_model, e2e):
    """It raised a bare OverflowError, an "unexpected" exit 1."""
    root = str(tmp_path / "root")
    e2e.copy_snapshots(storage, root)
    model = _patched_model(trained_model["model_uri"], str(tmp_path / "huge.tar.gz"), ABOVE_INT64)
    r = _run_cli(tmp_path, e2e.config(tmp_path, root, model), e2e)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-3000:]
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and ".out line" in last and "not a whole number in [0, capacity]" in last
