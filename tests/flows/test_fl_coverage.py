"""Degenerate nights are refused before anything is replaced (flows/stages.check_coverage).

Why: with a good partition in place, an empty snapshot store (or a wrong root, or a half
import) published a 0-row Parquet and the flow was Completed.
"""

from datetime import date

import pytest

from velibcast import storage as st
from velibcast.errors import DataError
from velibcast.flows import forecasts


def test_empty_store_wrong_root_and_missing_last_hours_are_refused(tmp_path, storage, trained_model, e2e):
    root = str(tmp_path / "root")
    e2e.copy_snapshots(storage, root)
    cfg = e2e.config(tmp_path, root, trained_model["model_uri"])
    good = e2e.run(cfg)
    d = date(2022, 5, 26)
    before = storage.read_bytes(forecasts.partition_uri(root, "evaluation", d))
    manifest_before = storage.read_text(good["manifest_uri"])

    def refused(cfg_path, *expected):
        with pytest.raises(DataError) as exc:
            e2e.run(cfg_path, force=True)
        msg = str(exc.value)
        for text in ("run date 2022-05-26", "3 of 3 origins", "nothing was published", *expected):
            assert text in msg, msg
        # the good night is untouched, object and manifest
        assert storage.read_bytes(forecasts.partition_uri(root, "evaluation", d)) == before
        assert storage.read_text(good["manifest_uri"]) == manifest_before
        table, manifests = e2e.published(storage, root)[d]
        assert table.num_rows == good["counts"]["forecast_rows"] and set(manifests) == {good["run_id"]}
        return msg

    # a wrong snapshots.root: nothing there
    empty = tmp_path / "elsewhere"
    empty.mkdir()
    wrong = e2e.config(tmp_path, root, trained_model["model_uri"], name="wrong", snapshots={"root": str(empty)})
    refused(wrong, f"snapshots {st.join(str(empty), 'velib', 'snapshots')}/", "found 0 snapshots read")

    # the store missing its last 10 hours (the last capture kept is 10 hours before the newest)
    snaps = st.join(root, "velib", "snapshots") + "/"
    objects = sorted(o.uri for o in storage.list(snaps))
    for uri in objects:
        if uri.rsplit("/", 1)[1] >= "2022-05-25T23":
            storage.delete(uri)
    refused(cfg, f"snapshots {snaps}", "captured 2022-05-2", "with 0")

    # an empty store
    for o in list(storage.list(snaps)):
        storage.delete(o.uri)
    refused(cfg, f"snapshots {snaps}", "found 0 snapshots read", "0 stations seen")


def test_the_threshold_is_a_setting(tmp_path, storage, trained_model, e2e):
    """No origin covers every station (some are not renting, some stale): 100 % refuses the night."""
    root = str(tmp_path / "root")
    e2e.copy_snapshots(storage, root)
    strict = e2e.config(tmp_path, root, trained_model["model_uri"], name="strict", run={"min_station_coverage": 1.0})
    with pytest.raises(DataError, match="fewer than 100%"):
        e2e.run(strict)
    assert not list(storage.list(st.join(root, "forecasts") + "/"))
    res = e2e.run(e2e.config(tmp_path, root, trained_model["model_uri"], run={"min_station_coverage": 0.5}))
    assert e2e.published(storage, root)[date(2022, 5, 26)][0].num_rows == res["counts"]["forecast_rows"]
