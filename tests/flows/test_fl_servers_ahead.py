"""The local runtime's model servers start while the windows are written (stages.transform_backend).

Why: 1.8 s of the nightly transform's 6 s was the model server's start-up (torch import, model
load), begun only after the windows stage had ended. Started ahead, the job must still take
them only for its own model and environment, and none may outlive the stages, however they end.
"""

from datetime import date

import pytest

from velibcast.config import load_config
from velibcast.errors import DataError
from velibcast.flows import stages
from velibcast.flows.run_identity import RunSpec


def _ctx(e2e, cfg_path):
    return stages.make_context(load_config(cfg_path), RunSpec(date(2022, 5, 26), e2e.utc(e2e.START), e2e.utc(e2e.END)))


def _ahead(backend) -> list:
    return [c.proc for started in backend._started.values() for c in started]


def test_the_job_takes_the_servers_started_ahead_and_none_outlives_the_stages(tmp_path, storage, trained_model, e2e):
    root = str(tmp_path / "root")
    e2e.copy_snapshots(storage, root)
    ctx = _ctx(e2e, e2e.config(tmp_path, root, trained_model["model_uri"]))
    with stages.transform_backend(ctx, start_servers=True) as backend:
        ahead = _ahead(backend)
        assert len(ahead) == 1  # one per instance (transform.instance_count)
        w = stages.stage_windows(ctx)
        t = stages.stage_transform(ctx, w, backend)
        assert t.describe["TransformJobStatus"] == "Completed"
        assert not _ahead(backend)  # the job took it
    assert all(p.poll() is not None for p in ahead)


def test_servers_started_ahead_of_a_refused_night_are_stopped(tmp_path, storage, trained_model, e2e):
    root = str(tmp_path / "root")  # no snapshots: the windows stage refuses the night
    ctx = _ctx(e2e, e2e.config(tmp_path, root, trained_model["model_uri"]))
    with pytest.raises(DataError, match="nothing was published"):
        with stages.transform_backend(ctx, start_servers=True) as backend:
            ahead = _ahead(backend)
            stages.stage_windows(ctx)
    assert ahead and all(p.poll() is not None for p in ahead)


def test_servers_of_another_environment_are_not_taken(tmp_path, storage, trained_model, e2e):
    """A job whose servers would differ (here MaxConcurrentTransforms, which sets each server's
    threads) starts its own; the one started ahead is left unused, and stopped with the backend."""
    root = str(tmp_path / "root")
    e2e.copy_snapshots(storage, root)
    ctx = _ctx(e2e, e2e.config(tmp_path, root, trained_model["model_uri"]))
    with stages.transform_backend(ctx) as backend:
        model_name = stages.model_name_for(ctx.model_version)
        backend.create_model(model_name, ctx.model_uri)
        backend.start_servers(model_name, {**stages.server_spec(ctx), "MaxConcurrentTransforms": 1})
        other = _ahead(backend)
        w = stages.stage_windows(ctx)
        assert stages.stage_transform(ctx, w, backend).describe["TransformJobStatus"] == "Completed"
        assert _ahead(backend) == other and all(p.poll() is None for p in other)
    assert other and all(p.poll() is not None for p in other)
