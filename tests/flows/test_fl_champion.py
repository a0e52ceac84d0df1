"""The nightly run serves the champion the pointer names, not the newest model, and records its backtest."""

import gzip
import io
import json
import logging
import tarfile

import pytest

from velibcast.errors import ConfigError, TerminalError
from velibcast.timeutil import UTC
from velibcast.training import package, registry
from velibcast.training.synthetic import untrained_archive


def test_nightly_uses_the_champion_not_the_newest_model(tmp_path, storage, trained_model, e2e):
    root = str(tmp_path / "root")
    e2e.copy_snapshots(storage, root)
    champion = trained_model["version"]
    storage.write_bytes(registry.model_uri(root, champion), storage.read_bytes(trained_model["model_uri"]))
    registry.promote(storage, root, champion, force=True, reason="fixture trained without backtest")
    # Written after the champion: "the newest model.tar.gz" would pick this one.
    package.write_model(storage, root, "lstm-newer-0", untrained_archive(5))
    res = e2e.run(e2e.config(tmp_path, root, None))
    m = json.loads(storage.read_text(res["manifest_uri"]))
    assert m["parameters"]["model_version"] == champion != "lstm-newer-0"
    assert m["parameters"]["model_uri"] == registry.model_uri(root, champion)
    assert "model_backtest" in m["parameters"]


def test_without_champion_the_run_says_how_to_name_one(tmp_path, storage, e2e):
    root = str(tmp_path / "root")
    e2e.copy_snapshots(storage, root)
    package.write_model(storage, root, "lstm-only-0", untrained_archive(5))
    with pytest.raises(Exception, match="no champion model.*velibcast models promote"):
        e2e.run(e2e.config(tmp_path, root, None))


def _with_config(archive: bytes, edit) -> bytes:
    """The archive with its config.json changed by `edit`."""
    raw, out = gzip.decompress(archive), io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(raw)) as src, tarfile.open(fileobj=out, mode="w") as dst:
        for m in src.getmembers():
            f = src.extractfile(m)
            data = f.read() if f else b""
            if m.name == "config.json":
                cfg = json.loads(data)
                edit(cfg)
                data = json.dumps(cfg).encode()
                m.size = len(data)
            dst.addfile(m, io.BytesIO(data))
    return gzip.compress(out.getvalue())


def _contract_1_features(cfg):
    cfg["feature_columns"] = ["is_weekend" if c == "non_working_day" else c for c in cfg["feature_columns"]]


def _contract_3_outputs(cfg):
    cfg["output_columns"] = [c for c in cfg["output_columns"] if not c.startswith("fallback_")]


@pytest.mark.parametrize("edit, problem", [(_contract_1_features, "feature contract 1 .is_weekend"),
                                           (_contract_3_outputs, "packaged for other output columns")])
def test_a_model_of_another_contract_is_refused_before_any_window(tmp_path, storage, e2e, edit, problem):
    root = str(tmp_path / "root")
    e2e.copy_snapshots(storage, root)
    uri = package.write_model(storage, root, "lstm-other-contract-0", _with_config(untrained_archive(5), edit))
    with pytest.raises(TerminalError, match=problem):
        e2e.run(e2e.config(tmp_path, root, uri))
    assert not list(storage.list(root + "/runs/")), "refused before any stage wrote anything"


def test_the_flow_names_a_store_root_that_does_not_exist_instead_of_finding_no_champion(tmp_path, storage, e2e):
    root = tmp_path / "elsewhere" / "data"
    with pytest.raises(ConfigError, match=f"store.root {root} does not exist") as e:
        e2e.run(e2e.config(tmp_path, str(root), None))
    assert "champion" not in str(e.value)
    assert not root.exists()


def test_train_flow_logs_progress_packages_and_promotes_only_a_winner(tmp_path, storage, e2e, caplog):
    from datetime import datetime

    from velibcast.flows.train import train

    root = str(tmp_path / "root")
    e2e.copy_snapshots(storage, root)  # 2022-05-25T03 .. 2022-05-26T09 captures
    cfg = e2e.config(tmp_path, root, None)
    # Prefect's own logging config stops "prefect" loggers from propagating to the root logger
    # that caplog listens on; listen on the flow-run logger itself.
    flow_logger = logging.getLogger("prefect.flow_runs")
    flow_logger.addHandler(caplog.handler)
    try:
        with caplog.at_level("INFO", logger="prefect.flow_runs"):
            # end is half-open like every range: hours before 10:00, the last one learnt is 09:00.
            info = train(config=cfg, start=datetime(2022, 5, 25, 3, tzinfo=UTC),
                         end=datetime(2022, 5, 26, 10, tzinfo=UTC), promote=True)
    finally:
        flow_logger.removeHandler(caplog.handler)
    rounds = [r.getMessage() for r in caplog.records if "round" in r.getMessage()]
    assert rounds and all("s elapsed" in m for m in rounds)
    assert info["version"].startswith("gbm-20220526-")
    assert storage.exists(registry.model_uri(root, info["version"]))
    metadata = registry.read_metadata(storage, info["model_uri"])
    assert metadata["training_data"]["end"] == "2022-05-26T09:00:00Z", "the end hour itself is not learnt"
    metrics = json.loads(storage.read_text(f"{root}/models/{info['version']}/metrics.json"))
    bt = metrics["backtest"]
    # Every origin of this short store is on 2022-05-26: no day has training data before it, so there is no
    # backtest evidence and promotion refuses the model (the pointer stays absent).
    assert bt["days"] == [] and [d["day"] for d in bt["skipped_days"]] == ["2022-05-26"]
    assert registry.read_champion(storage, root) is None
    assert info["promotion"].startswith("promotion refused") and "no backtest day" in info["promotion"]
