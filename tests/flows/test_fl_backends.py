"""Both transform backends take their wait deadline from the config (every wait has one)."""

from types import SimpleNamespace

from velibcast.config import load_config
from velibcast.flows.backends import _backend
from velibcast.storage import Storage


def _ctx(tmp_path, **transform):
    cfg = load_config(None, {"store": {"root": str(tmp_path)}, "transform": transform})
    return SimpleNamespace(cfg=cfg, storage=Storage(), root=str(tmp_path))


def test_local_backend_waits_at_most_the_configured_deadline(tmp_path):
    assert _backend(_ctx(tmp_path, wait_deadline_s=90)).wait_deadline_s == 90


def test_sagemaker_backend_waits_at_most_the_configured_deadline(tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-3")
    ctx = _ctx(tmp_path, backend="sagemaker", wait_deadline_s=120,
               sagemaker={"role_arn": "arn:aws:iam::000000000000:role/r", "region": "eu-west-3"})
    assert _backend(ctx).deadline_s == 120
