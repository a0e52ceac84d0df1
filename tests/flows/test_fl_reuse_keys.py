"""A rerun reuses a stage only for what it would read now: the model artifact's bytes (not the
version its metadata.json claims) and the content of the snapshot objects of its span (not
their names). A rerun with nothing changed still reuses every stage."""

import json
from datetime import date

from velibcast.training import registry

from .test_fl_faults import _patched_model
from .test_fl_force_recompute import DROPPED, _corrected

RUN_DATE = date(2022, 5, 26)

ZEROS = """
_orig_output_fn = output_fn
def output_fn(prediction, accept):
    counts, unknown, batch = prediction
    return _orig_output_fn((counts * 0, unknown, batch), accept)
"""


def _point_champion_at(storage, root, model_uri, version):
    storage.write_text(registry.champion_uri(root), json.dumps({"version": version, "model_uri": model_uri}))


def test_a_champion_pointing_at_another_artifact_of_the_same_version_gets_new_predictions(
        tmp_path, storage, trained_model, e2e):
    root = str(tmp_path / "root")
    e2e.copy_snapshots(storage, root)
    _point_champion_at(storage, root, trained_model["model_uri"], trained_model["version"])
    cfg = e2e.config(tmp_path, root, None)
    first = e2e.run(cfg)
    assert set(e2e.published(storage, root)[RUN_DATE][0].column("bikes_pred").to_pylist()) != {0}

    # another model.tar.gz whose metadata.json carries the same version
    other = _patched_model(trained_model["model_uri"], str(tmp_path / "other.tar.gz"), ZEROS)
    _point_champion_at(storage, root, other, trained_model["version"])
    second = e2e.run(cfg)
    assert second["run_id"] == first["run_id"] and second["reused"] is None
    table, manifests = e2e.published(storage, root)[RUN_DATE]
    assert set(table.column("bikes_pred").to_pylist()) == {0}
    assert manifests[second["run_id"]]["parameters"]["model_uri"] == other

    third = e2e.run(cfg)  # nothing changed since: every stage is reused
    assert "windows and transform" in third["reused"]


def test_corrected_snapshots_get_new_predictions_without_force(tmp_path, storage, trained_model, e2e):
    root = str(tmp_path / "root")
    e2e.copy_snapshots(storage, root)
    cfg = e2e.config(tmp_path, root, trained_model["model_uri"])
    first = e2e.run(cfg)
    assert DROPPED in set(e2e.published(storage, root)[RUN_DATE][0].column("station_code").to_pylist())

    e2e.copy_snapshots(storage, root, _corrected)  # the corrected store, same keys
    second = e2e.run(cfg)
    assert second["run_id"] == first["run_id"] and second["reused"] is None

    fresh_root = str(tmp_path / "fresh")
    e2e.copy_snapshots(storage, fresh_root, _corrected)
    e2e.run(e2e.config(tmp_path, fresh_root, trained_model["model_uri"], name="fresh"))
    assert (e2e.published(storage, root)[RUN_DATE][0].drop(["run_id"]).to_pylist()
            == e2e.published(storage, fresh_root)[RUN_DATE][0].drop(["run_id"]).to_pylist())
