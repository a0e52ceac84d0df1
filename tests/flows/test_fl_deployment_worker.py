"""The local deployments run as the README says: a Prefect server, `prefect deploy --all` from the
repository folder, a process worker started from the folder whose ./data the runs use, and
`prefect deployment run forecast/<product>-local` with nothing else: no job variable.

The server is the session's (tests/flows/conftest.py): a real Prefect API server in its own
process, as `prefect server start` would be; the CLI commands reach it through PREFECT_API_URL."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
from prefect.settings import PREFECT_API_URL

from tests.helpers import REPO, wait_until
from velibcast.datasets import ingest
from velibcast.flows import forecasts
from velibcast.training import registry

PREFECT = str(Path(sys.executable).with_name("prefect"))
AS_OF = "2022-05-26T06:20:00Z"


def _env(home: Path, api: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    return {**env, "PREFECT_HOME": str(home), "PREFECT_API_URL": api, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}


def _start(args, env, cwd, log: Path) -> subprocess.Popen:
    return subprocess.Popen(args, env=env, cwd=cwd, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)


LOCAL = ["day-ahead-local", "nowcast-local", "ingest-states-local"]


def _flow_runs(api: str) -> list[dict]:
    """The runs of the local deployments run here (the session's server holds other tests' runs too)."""
    body = {"deployments": {"name": {"any_": LOCAL}}}
    return httpx.post(f"{api}/flow_runs/filter", json=body, timeout=10).json()


def test_the_local_deployments_run_in_the_folder_the_process_worker_was_started_from(tmp_path, storage, trained_model,
                                                                                      e2e):
    work = tmp_path / "operator"  # where the user starts the worker: its ./data is what configs/local.yaml means
    root = str(work / "data")
    e2e.copy_snapshots(storage, root)
    version = trained_model["version"]
    storage.write_bytes(registry.model_uri(root, version), storage.read_bytes(trained_model["model_uri"]))
    registry.promote(storage, root, version, force=True, reason="test: the store's champion")

    api = PREFECT_API_URL.value()
    assert _healthy(api) and not _flow_runs(api)
    env = _env(tmp_path / "prefect-home", api)
    worker = None
    try:
        subprocess.run([PREFECT, "work-pool", "create", "velibcast-process", "--type", "process"], env=env,
                       cwd=tmp_path, check=True, capture_output=True, timeout=120)
        subprocess.run([PREFECT, "--no-prompt", "deploy", "--all"], env=env, cwd=REPO, check=True,
                       capture_output=True, timeout=300)
        # The worker's folder stands for the repository folder the README starts it from (the repository's
        # own ./data is not this test's to write); the flows import velibcast from the installed package.
        worker = _start([PREFECT, "worker", "start", "--pool", "velibcast-process"], env, work,
                        tmp_path / "worker.log")
        for product in ("day-ahead", "nowcast"):
            subprocess.run([PREFECT, "deployment", "run", f"forecast/{product}-local", "--param", f"as_of={AS_OF}"],
                           env=env, cwd=tmp_path, check=True, capture_output=True, timeout=120)
        subprocess.run([PREFECT, "deployment", "run", "ingest-states/ingest-states-local", "--param", f"end={AS_OF}",
                        "--param", "days_back=0"], env=env, cwd=tmp_path, check=True, capture_output=True, timeout=120)
        wait_until(lambda: _all_final(api, 3), "the three flow runs end", timeout_s=600)
        runs = _flow_runs(api)
        assert [r["state_type"] for r in runs] == ["COMPLETED"] * 3, (
            [(r["name"], r["state_name"]) for r in runs], (tmp_path / "worker.log").read_text()[-3000:])
        assert {"day-ahead-2022-05-26T0620Z", "nowcast-2022-05-26T0620Z"} <= {r["name"] for r in runs}
    finally:
        if worker is not None:
            _stop(worker)
    for product, horizons in (("day-ahead", 24), ("nowcast", 3)):
        table = forecasts.read_partition(storage, root, product, e2e.utc(AS_OF).date())
        assert table.num_rows > 0 and table.num_rows % horizons == 0
        assert set(table.column("horizon_h").to_pylist()) == set(range(1, horizons + 1))
    assert (work / "data" / "states" / f"date={e2e.utc(AS_OF).date()}" / ingest.LEDGER_NAME).is_file()
    # the runs used the worker's folder in place: no flow code or checkout was copied into it
    assert sorted(p.name for p in work.iterdir()) == ["data"]


def _healthy(api: str) -> bool:
    try:
        return httpx.get(f"{api}/health", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def _all_final(api: str, n: int) -> bool:
    runs = _flow_runs(api)
    return len(runs) >= n and all(r["state_type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED") for r in runs)
