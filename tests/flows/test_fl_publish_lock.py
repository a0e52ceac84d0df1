"""Two runs of the same date cannot both publish (conditional create of the lock), and a lock
whose owner is dead (pid gone or reused, lease expired on another host) is taken over."""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import date

import pytest

from velibcast.flows.publish import PublishConflict, lock_uri, publish_lock
from velibcast.liveness import Owner
from velibcast.timeutil import UTC

P = "evaluation"  # the product whose dates these tests lock


def test_second_holder_is_refused_with_the_holder_named(any_root, storage):
    d = date(2022, 5, 26)
    with publish_lock(storage, any_root, P, d, "run-A"):
        with pytest.raises(PublishConflict, match="run-A .* is publishing the evaluation forecasts of 2022-05-26"):
            with publish_lock(storage, any_root, P, d, "run-B"):
                pass
    with publish_lock(storage, any_root, P, d, "run-B"):
        pass  # released after the first one finished
    assert not storage.exists(lock_uri(any_root, P, d))


def test_each_product_locks_its_own_dates(any_root, storage):
    """The hourly nowcast publishes while the day-ahead of the same date may be publishing."""
    d = date(2022, 5, 26)
    with publish_lock(storage, any_root, "day-ahead", d, "run-A"):
        with publish_lock(storage, any_root, "nowcast", d, "run-B"):
            assert storage.exists(lock_uri(any_root, "nowcast", d))
        with pytest.raises(PublishConflict, match="run-A .* is publishing the day-ahead forecasts of 2022-05-26"):
            with publish_lock(storage, any_root, "day-ahead", d, "run-C"):
                pass
    assert lock_uri(any_root, "day-ahead", d) != lock_uri(any_root, "nowcast", d)
    assert "/forecasts/_locks/" in lock_uri(any_root, "day-ahead", d), "under `_`: readers skip it"


def test_concurrent_publishers_have_exactly_one_winner(any_root, storage):
    d = date(2022, 5, 27)
    barrier = threading.Barrier(4)
    outcomes = {}
    everyone_tried = threading.Barrier(4, timeout=30)

    def attempt(i):
        barrier.wait()
        try:
            with publish_lock(storage, any_root, P, d, f"run-{i}"):
                outcomes[i] = "won"
                everyone_tried.wait()  # hold the lock until every other publisher has tried
                return
        except PublishConflict:
            outcomes[i] = "refused"
        except Exception as e:  # anything else is a failure of the test, reported below
            outcomes[i] = repr(e)
        everyone_tried.wait()

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(outcomes.values()) == ["refused", "refused", "refused", "won"], outcomes


def test_a_dead_holders_stale_lock_is_taken_over(tmp_path, storage):
    d = date(2022, 5, 28)
    uri = lock_uri(str(tmp_path), P, d)
    storage.write_text(uri, json.dumps({"run_id": "dead", "host": "h", "pid": 1,
                                        "acquired_at": "2000-01-01T00:00:00+00:00"}))
    with publish_lock(storage, str(tmp_path), P, d, "alive"):
        assert json.loads(storage.read_text(uri))["run_id"] == "alive"


# ---------------------------------------------------------------- owner identity
def _holder(**kw):
    from datetime import datetime

    body = {"run_id": "other", **Owner.current().to_json(), "token": "t0",
            "acquired_at": datetime.now(UTC).isoformat()}
    body.update(kw)
    return body


def test_a_reused_pid_does_not_keep_the_lock(tmp_path, storage):
    """The holder's pid exists (it is ours) but started at another time: its holder is dead."""
    d = date(2022, 5, 29)
    uri = lock_uri(str(tmp_path), P, d)
    storage.write_text(uri, json.dumps(_holder(start_ticks="42")))
    with publish_lock(storage, str(tmp_path), P, d, "alive"):
        assert json.loads(storage.read_text(uri))["run_id"] == "alive"
    assert not storage.exists(uri)


def test_a_live_holder_keeps_the_lock_however_old(tmp_path, storage):
    d = date(2022, 5, 30)
    uri = lock_uri(str(tmp_path), P, d)
    storage.write_text(uri, json.dumps(_holder(acquired_at="2000-01-01T00:00:00+00:00",
                                               lease_expires_at="2000-01-01T06:00:00+00:00")))
    with pytest.raises(PublishConflict, match=f"pid {os.getpid()}"):
        with publish_lock(storage, str(tmp_path), P, d, "B"):
            pass
    assert json.loads(storage.read_text(uri))["run_id"] == "other"


def test_a_holder_on_another_host_keeps_it_until_its_lease_expires(tmp_path, storage):
    from datetime import datetime, timedelta

    d = date(2022, 5, 31)
    uri = lock_uri(str(tmp_path), P, d)
    now = datetime(2022, 6, 1, 3, 0, tzinfo=UTC)
    storage.write_text(uri, json.dumps(_holder(host="elsewhere", pid=1, acquired_at=now.isoformat(),
                                               lease_expires_at=(now + timedelta(hours=1)).isoformat())))
    with pytest.raises(PublishConflict, match="elsewhere"):
        with publish_lock(storage, str(tmp_path), P, d, "B", now=now + timedelta(minutes=59)):
            pass
    with publish_lock(storage, str(tmp_path), P, d, "B", now=now + timedelta(hours=1, seconds=1)):
        assert json.loads(storage.read_text(uri))["run_id"] == "B"


def test_one_taker_per_dead_holder(tmp_path, storage):
    """Two runs that both saw the same dead holder: the takeover marker lets only one in."""
    d = date(2022, 6, 1)
    uri = lock_uri(str(tmp_path), P, d)
    dead = _holder(boot_id="another-boot", token="dead-token")
    storage.write_text(uri, json.dumps(dead))
    with publish_lock(storage, str(tmp_path), P, d, "first"):
        storage.write_text(uri, json.dumps(dead))  # what the second run read before the first took over
        with pytest.raises(PublishConflict, match="taking over"):
            with publish_lock(storage, str(tmp_path), P, d, "second"):
                pass


# ---------------------------------------------------------------- SIGKILL inside the publish step
HANG_IN_PUBLISH = """
import pathlib, sys, time
from velibcast import storage as st

_write = st.Storage.write_bytes
def write_bytes(self, uri, data, content_type=None):
    if uri.endswith("/part-0.parquet"):
        pathlib.Path(sys.argv[1]).write_text("inside the publish lock")
        time.sleep(3600)  # killed here
    return _write(self, uri, data, content_type)
st.Storage.write_bytes = write_bytes

from velibcast.flows.cli import main
sys.exit(main(sys.argv[2:]))
"""


def test_a_run_killed_inside_the_publish_lock_is_taken_over(tmp_path, storage, trained_model, e2e):
    """Why: a run killed inside the lock blocked its date for 6 hours (PublishConflict naming a dead pid)."""
    import signal
    import subprocess
    import sys
    import time

    from velibcast.flows import forecasts

    root = str(tmp_path / "root")
    e2e.copy_snapshots(storage, root)
    cfg = e2e.config(tmp_path, root, trained_model["model_uri"])
    ready = tmp_path / "in-publish"
    env = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120"}
    env.pop("PREFECT_API_URL", None)
    proc = subprocess.Popen([sys.executable, "-c", HANG_IN_PUBLISH, str(ready), "run", "--config", cfg,
                             "--start", e2e.START, "--end", e2e.END],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 400
        while time.time() < deadline and not ready.exists():
            assert proc.poll() is None, "the run ended before it reached the publish step"
            time.sleep(0.2)
        assert ready.exists()
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    d = date(2022, 5, 26)
    held = json.loads(storage.read_text(lock_uri(root, P, d)))
    assert held["pid"] == proc.pid and held["host"] == socket.gethostname()
    assert not storage.exists(forecasts.partition_uri(root, P, d))

    res = e2e.run(cfg)  # the killed run's pid is gone: taken over at once, not after a 6 h TTL
    assert not storage.exists(lock_uri(root, P, d))
    published = e2e.published(storage, root)
    table, manifests = published[d]
    assert table.num_rows == res["counts"]["forecast_rows"] > 0
    assert json.loads(storage.read_text(res["manifest_uri"]))["attempt"] == manifests[res["run_id"]]["attempt"]


# ---------------------------------------------------------------- nothing left behind
HOLD_A_LOCK = """
import sys, time
from datetime import date
from velibcast.storage import Storage
from velibcast.flows.publish import publish_lock
root, d, mode = sys.argv[1], date.fromisoformat(sys.argv[2]), sys.argv[3]
storage = Storage()
if mode == "hold":
    with publish_lock(storage, root, "evaluation", d, "killed"):
        print("held", flush=True)
        time.sleep(600)
else:  # take and release the lock over and over, to be killed at any moment of it
    print("looping", flush=True)
    while True:
        with publish_lock(storage, root, "evaluation", d, "killed"):
            pass
"""


def _killed_child(root: str, d: date, mode: str, after_s: float = 0.0) -> None:
    """A process holding (or taking and releasing) the date's lock, killed with SIGKILL."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD_A_LOCK, root, d.isoformat(), mode],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() in ("held", "looping")
        time.sleep(after_s)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)


def _locks_folder(storage, root) -> list[str]:
    """Every file under the locks folder (the empty folder of a product may stay)."""
    if storage_is_local(root):
        folder = os.path.join(root, "forecasts", "_locks")
        return sorted(os.path.join(dp, f) for dp, _, files in os.walk(folder) for f in files)
    return [o.uri for o in storage.list(root.rstrip("/") + "/forecasts/_locks/")]


def storage_is_local(root: str) -> bool:
    return not root.startswith("s3://")


def test_a_lock_taken_over_from_a_killed_run_leaves_no_marker_once_released(any_root, storage):
    d = date(2022, 6, 2)
    _killed_child(any_root, d, "hold")
    with publish_lock(storage, any_root, "evaluation", d, "rerun"):
        pass
    assert _locks_folder(storage, any_root) == []


def test_a_publisher_killed_at_any_moment_leaves_nothing_in_the_locks_folder_after_the_next_run(tmp_path, storage):
    """Locks exist only while a run publishes: no lock, no takeover marker, no temporary file."""
    d = date(2022, 6, 3)
    root = str(tmp_path)
    for i in range(6):
        _killed_child(root, d, "loop", after_s=0.2 + 0.03 * i)
        with publish_lock(storage, root, "evaluation", d, f"rerun-{i}"):
            pass
        assert _locks_folder(storage, root) == [], f"after kill {i}"
