"""S3 5xx, throttling and broken connections injected between boto3 and the moto server.

Intermittent faults are absorbed by botocore's standard retries; persistent ones end in a
TransientStorageError naming the object. Nothing is lost or duplicated either way.
"""

from datetime import date

import pytest

from tests.helpers import output_line
from velibcast import storage as st
from velibcast.errors import AccessDenied, TerminalError, TransientStorageError
from velibcast.flows import forecasts
from velibcast.flows.products import EVALUATION
from velibcast.timeutil import UTC, iso_minute

RETRYABLE = ["slowdown", "internal", "throttling", "reset"]


def attempts_per_call(storage) -> int:
    """Total attempts botocore makes for one call (its `max_attempts` counts the retries)."""
    return storage.s3.meta.config.retries["total_max_attempts"]


@pytest.mark.parametrize("kind", RETRYABLE)
def test_each_operation_survives_faults_below_the_retry_budget(faulty_s3, kind):
    storage, root, proxy = faulty_s3
    budget = attempts_per_call(storage) - 1
    uri = st.join(root, "a", "obj.bin")

    proxy.fail_next(budget, kind)
    storage.write_bytes(uri, b"payload")
    assert len(proxy.faults()) == budget

    proxy.fail_next(budget, kind)
    assert storage.read_bytes(uri) == b"payload"

    proxy.fail_next(budget, kind)
    assert [o.uri for o in storage.list(st.join(root, "a") + "/")] == [uri]

    proxy.fail_next(budget, kind)
    assert storage.exists(uri)

    proxy.fail_next(budget, kind)
    assert storage.put_if_absent(st.join(root, "a", "lock"), b"me")

    proxy.fail_next(budget, kind)
    storage.delete(uri)
    proxy.clear()
    assert not storage.exists(uri)


@pytest.mark.parametrize("kind", ["slowdown", "internal", "throttling"])
@pytest.mark.parametrize("op", ["write", "read", "list", "exists", "delete", "put_if_absent"])
def test_persistent_faults_raise_a_transient_error_naming_the_object(faulty_s3, kind, op):
    storage, root, proxy = faulty_s3
    uri = st.join(root, "b", "obj.bin")
    storage.write_bytes(uri, b"kept")
    calls = {
        "write": lambda: storage.write_bytes(uri, b"new"),
        "read": lambda: storage.read_bytes(uri),
        "list": lambda: list(storage.list(st.join(root, "b") + "/")),
        "exists": lambda: storage.exists(uri),
        "delete": lambda: storage.delete(uri),
        "put_if_absent": lambda: storage.put_if_absent(st.join(root, "b", "lock"), b"me"),
    }
    proxy.every(1, kind)
    with pytest.raises(TransientStorageError) as info:
        calls[op]()
    target = st.join(root, "b") + "/" if op == "list" else st.join(root, "b", "lock") if op == "put_if_absent" else uri
    assert target in str(info.value)
    assert len(proxy.faults()) == attempts_per_call(storage), "every attempt was spent before giving up"
    proxy.clear()
    assert storage.read_bytes(uri) == b"kept", "a failed call must leave the object as it was"


def test_a_truncated_body_is_an_error_not_short_data(faulty_s3):
    storage, root, proxy = faulty_s3
    uri = st.join(root, "c", "big.bin")
    data = bytes(range(256)) * 4096
    storage.write_bytes(uri, data)
    proxy.fail_next(1, "truncate", method="GET")
    with pytest.raises(TransientStorageError, match="big.bin"):
        storage.read_bytes(uri)
    proxy.clear()
    assert storage.read_bytes(uri) == data


def test_a_lost_response_to_a_plain_put_is_retried_harmlessly(faulty_s3):
    storage, root, proxy = faulty_s3
    uri = st.join(root, "d", "obj.bin")
    proxy.fail_next(1, "lost", method="PUT")
    storage.write_bytes(uri, b"once")
    assert [s.method for s in proxy.seen] == ["PUT", "PUT"]
    assert storage.read_bytes(uri) == b"once"
    assert [o.uri for o in storage.list(st.join(root, "d") + "/")] == [uri]


def test_a_lost_response_to_a_conditional_put_still_tells_the_winner(faulty_s3):
    """The first If-None-Match PUT creates the object but its answer is lost; botocore's
    retry then gets 412. The caller did create it, and must be told so, or a publish lock
    would be orphaned with its own holder locked out."""
    storage, root, proxy = faulty_s3
    uri = st.join(root, "e", "lock.json")
    proxy.fail_next(1, "lost", method="PUT")
    assert storage.put_if_absent(uri, b'{"run_id": "r1", "nonce": "a"}') is True
    assert storage.put_if_absent(uri, b'{"run_id": "r2", "nonce": "b"}') is False


def test_intermittent_faults_on_a_whole_publish_lose_and_duplicate_nothing(faulty_s3):
    """A date's forecasts and its lock go through a proxy failing one request in three."""
    from datetime import datetime, timedelta

    from velibcast.flows.publish import lock_uri, publish_lock

    storage, root, proxy = faulty_s3
    t0 = datetime(2022, 5, 25, 22, tzinfo=UTC)
    sent = {f"{c}@{iso_minute(t0 + timedelta(hours=k))}": forecasts.SentRecord(c, t0 + timedelta(hours=k), 30, False)
            for c in ("16107", "9020") for k in range(24)}
    out = "\n".join(output_line(rid, [1, 2, 3], 30) for rid in sent).encode()
    table = forecasts.join_predictions(sent, [("o.out", out)], "csv", "v1", "run-1", EVALUATION)
    d = date(2022, 5, 26)
    for kind in ("slowdown", "internal", "reset"):
        proxy.every(3, kind)
        with publish_lock(storage, root, EVALUATION.name, d, "run-1"):
            forecasts.publish(storage, root, EVALUATION.name, d, table)
        got = forecasts.read_partition(storage, root, EVALUATION.name, d)
        proxy.clear()
        assert got.equals(table)
        assert not storage.exists(lock_uri(root, EVALUATION.name, d)), "the lock is released"
        assert [o.uri for o in storage.list(st.join(root, "forecasts") + "/")] == [
            forecasts.partition_uri(root, EVALUATION.name, d)]
        assert proxy.faults(), "faults were injected"


def test_random_fault_rate_over_many_objects(faulty_s3):
    storage, root, proxy = faulty_s3
    proxy.rate(0.3, "slowdown", seed=7)
    uris = [st.join(root, "f", f"obj-{i:03d}") for i in range(20)]
    for i, u in enumerate(uris):
        storage.write_bytes(u, str(i).encode())
    listed = [o.uri for o in storage.list(st.join(root, "f") + "/")]
    values = [storage.read_bytes(u) for u in uris]
    proxy.clear()
    assert listed == uris
    assert values == [str(i).encode() for i in range(20)]
    assert len(proxy.faults()) > 5


def test_a_publish_lock_whose_answer_was_lost_is_still_held_and_released(faulty_s3):
    from velibcast.flows.publish import lock_uri, publish_lock

    storage, root, proxy = faulty_s3
    d = date(2022, 5, 26)
    proxy.fail_next(1, "lost", method="PUT")
    with publish_lock(storage, root, EVALUATION.name, d, "run-1"):
        assert storage.exists(lock_uri(root, EVALUATION.name, d))
    assert not storage.exists(lock_uri(root, EVALUATION.name, d))
    assert "_locks/product%3Devaluation/run_date%3D2022-05-26.json" in proxy.faults()[0].path


@pytest.mark.parametrize("op", ["exists", "read", "write"])
def test_access_denied_is_an_error_never_a_missing_object(faulty_s3, op):
    """S3 answers 403 to a HEAD of a missing key when s3:ListBucket is not granted, so a 403
    cannot tell "absent" from "present but forbidden": it is an error, and it says which grant."""
    storage, root, proxy = faulty_s3
    uri = st.join(root, "c", "obj.bin")
    storage.write_bytes(uri, b"kept")
    calls = {"exists": lambda: storage.exists(uri), "read": lambda: storage.read_bytes(uri),
             "write": lambda: storage.write_bytes(uri, b"new")}
    proxy.every(1, "denied")
    with pytest.raises(AccessDenied) as info:
        calls[op]()
    assert isinstance(info.value, TerminalError) and not info.value.transient
    assert info.value.status == 403
    assert uri in str(info.value) and "s3:ListBucket" in str(info.value)
    assert len(proxy.faults()) == 1, "a 403 is not retried"
    proxy.clear()
    assert storage.read_bytes(uri) == b"kept"
