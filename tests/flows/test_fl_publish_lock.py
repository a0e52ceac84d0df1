"""Two runs of the same date cannot both publish (conditional create of the lock)."""

import json
import threading
from datetime import date

import pytest

from velibcast.flows.publish import PublishConflict, lock_uri, publish_lock


def test_second_holder_is_refused_with_the_holder_named(any_root, storage):
    d = date(2022, 5, 26)
    with publish_lock(storage, any_root, d, "run-A"):
        with pytest.raises(PublishConflict, match="run-A"):
            with publish_lock(storage, any_root, d, "run-B"):
                pass
    with publish_lock(storage, any_root, d, "run-B"):
        pass  # released after the first one finished
    assert not storage.exists(lock_uri(any_root, d))


def test_concurrent_publishers_have_exactly_one_winner(any_root, storage):
    d = date(2022, 5, 27)
    barrier = threading.Barrier(4)
    outcomes = {}
    everyone_tried = threading.Barrier(4, timeout=30)

    def attempt(i):
        barrier.wait()
        try:
            with publish_lock(storage, any_root, d, f"run-{i}"):
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
    uri = lock_uri(str(tmp_path), d)
    storage.write_text(uri, json.dumps({"run_id": "dead", "host": "h", "pid": 1,
                                        "acquired_at": "2000-01-01T00:00:00+00:00"}))
    with publish_lock(storage, str(tmp_path), d, "alive"):
        assert json.loads(storage.read_text(uri))["run_id"] == "alive"
