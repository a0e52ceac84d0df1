"""Every process a run starts dies with it, and leaves no temporary file, however the run dies."""

import json
import os
import signal
import subprocess
import sys

import psutil

from tests.helpers import wait_until

SERVER_MODULE = "velibcast.batch_transform.server"


def _alive(p: psutil.Process) -> bool:
    """Running and not a zombie (an orphan's exit is reaped by whatever adopted it, maybe never)."""
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _job_in_progress(root: str) -> bool:
    d = os.path.join(root, "transform-jobs")
    if not os.path.isdir(d):
        return False
    for name in os.listdir(d):
        if name.endswith(".json"):
            with open(os.path.join(d, name)) as f:
                if json.load(f)["TransformJobStatus"] == "InProgress":
                    return True
    return False


def _model_servers(children: list[psutil.Process]) -> list[psutil.Process]:
    out = []
    for c in children:
        try:
            if SERVER_MODULE in c.cmdline():
                out.append(c)
        except psutil.NoSuchProcess:
            pass
    return out


def test_a_run_killed_during_transform_leaves_no_process_and_no_temporary_file(tmp_path, storage, trained_model,
                                                                                e2e):
    """SIGKILL runs no cleanup in the killed process (no finally, no atexit): its model servers
    must notice on their own, and its extracted model and server logs must still go."""
    root = str(tmp_path / "root")
    e2e.copy_snapshots(storage, root)
    # SingleRecord makes the transform long enough to be killed in the middle of it.
    cfg = e2e.config(tmp_path, root, trained_model["model_uri"],
                     transform={"batch_strategy": "SingleRecord", "max_concurrent_transforms": 1})
    tmp = tmp_path / "tmpdir"
    tmp.mkdir()
    # The run's own temporary folder: whatever it leaves there is a leftover of this run.
    env = {**os.environ, "TMPDIR": str(tmp), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120"}
    env.pop("PREFECT_API_URL", None)  # the command starts its temporary Prefect server, a child too
    proc = subprocess.Popen([sys.executable, "-m", "velibcast.flows.cli", "run", "--config", cfg,
                             "--start", e2e.START, "--end", e2e.END],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    parent = psutil.Process(proc.pid)
    try:
        wait_until(lambda: proc.poll() is None and _job_in_progress(root)
                   and bool(_model_servers(parent.children(recursive=True))),
                   "the run's transform job is in progress on its model servers", timeout_s=240)
        children = parent.children(recursive=True)
        assert _model_servers(children) and os.listdir(tmp)
    finally:
        proc.send_signal(signal.SIGKILL)  # the command alone: its children are not signalled
        proc.wait()
    wait_until(lambda: not [c for c in children if _alive(c)], "no child of the killed run is alive",
               timeout_s=60)
    wait_until(lambda: not os.listdir(tmp), f"no temporary file of the killed run is left in {tmp}",
               timeout_s=30)
