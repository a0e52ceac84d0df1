"""The engine's errors are in velibcast's hierarchy and say whether a retry may help."""

import pytest

from velibcast.batch_transform import errors as E
from velibcast.errors import VelibcastError, is_transient


@pytest.mark.parametrize("status, transient", [(None, True), (500, True), (503, True), (400, False), (415, False)])
def test_invocation_failed_is_transient_only_without_an_answer_or_on_5xx(status, transient):
    e = E.InvocationFailed(status, "body")
    assert isinstance(e, VelibcastError)
    assert e.transient is transient and e.status == status


def test_every_engine_error_is_a_velibcast_error_with_a_transient_flag():
    classes = [v for v in vars(E).values() if isinstance(v, type) and issubclass(v, Exception)]
    assert len(classes) >= 8
    for cls in classes:
        assert issubclass(cls, VelibcastError), cls
        assert isinstance(cls.transient, bool), cls
    assert E.TransformJobTimeout.transient and not E.TransformJobFailed.transient
    assert E.ApiError("ValidationException", "m").status == 400


def test_the_task_retry_policy_reads_the_errors_own_transient_flag():
    assert is_transient(E.InvocationFailed(503, "busy")) and not is_transient(E.InvocationFailed(400, "bad"))
    assert is_transient(E.TransformJobTimeout("x")) and not is_transient(E.ResourceNotFound("x"))
    assert not is_transient(RuntimeError("not ours"))
