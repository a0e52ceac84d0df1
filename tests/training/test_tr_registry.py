"""Model lifecycle: the champion pointer, and promotion that refuses a model that loses."""

import json
from datetime import datetime

import pytest

from velibcast.errors import ConfigError
from velibcast.timeutil import UTC
from velibcast.training import package, registry
from velibcast.training.synthetic import untrained_archive

NOW = datetime(2022, 6, 1, 3, 0, tzinfo=UTC)


def backtest(days):
    """A backtest table: {day: (model MAE at T+1..3h, persistence MAE at T+1..3h)}; the T+3h values
    hold for every later horizon, the other baselines are far behind."""
    from velibcast.training.backtest import summarise

    def horizons(v):
        return [*v, *[v[-1]] * 21]

    rows = [{"day": d, "day_type": "working", "windows": 100,
             "scores": {"gbm": {"n": [100] * 24, "mae": {"gbm": horizons(m), "persistence": horizons(p),
                                                         "same_day_type": [9.0] * 24, "profile": [9.0] * 24}}}}
            for d, (m, p) in days.items()]
    return {"candidates": ["gbm"], "days": rows, "skipped_days": [], "summary": summarise(rows, ["gbm"])}


def put_model(storage, root, version, bt):
    """A loadable archive whose metadata carries the given backtest."""
    import gzip
    import io
    import tarfile

    raw = gzip.decompress(untrained_archive(3))
    out = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(raw)) as src, tarfile.open(fileobj=out, mode="w") as dst:
        for m in src.getmembers():
            data = src.extractfile(m).read()
            if m.name == "metadata.json":
                data = json.dumps({"version": version, "family": "gbm", "metrics": {"backtest": bt},
                                   "training_data": {"start": "2022-05-23T00:00:00Z", "end": "2022-05-25T22:00:00Z"}}).encode()
                m.size = len(data)
            dst.addfile(m, io.BytesIO(data))
    return package.write_model(storage, root, version, gzip.compress(out.getvalue(), mtime=0))


def test_no_champion_is_a_clear_error(storage, tmp_path):
    root = str(tmp_path)
    put_model(storage, root, "gbm-a", backtest({"2022-05-25": ((1, 2, 3), (2, 3, 4))}))
    with pytest.raises(ConfigError, match="no champion model.*promote one of gbm-a with `velibcast models promote VERSION`"):
        registry.champion_model_uri(storage, root)
    # the fix names the store the run was given, so the commands act on it
    with pytest.raises(ConfigError, match="`velibcast models promote VERSION --config prod.yaml`"):
        registry.champion_model_uri(storage, root, "prod.yaml")


def test_promotion_refuses_a_model_that_loses_to_persistence(storage, tmp_path):
    root = str(tmp_path)
    put_model(storage, root, "gbm-loser", backtest({"2022-05-25": ((1.0, 3.5, 4.5), (2.0, 3.0, 4.0))}))
    with pytest.raises(registry.PromotionRefused, match=r"does not beat persistence.*T\+2h 3.500 vs 3.000"):
        registry.promote(storage, root, "gbm-loser", now=NOW)
    assert registry.read_champion(storage, root) is None, "a refused promotion leaves the pointer alone"
    p = registry.promote(storage, root, "gbm-loser", force=True, reason="test", now=NOW)
    assert p["forced"] and "does not beat persistence" in p["overridden"][0] and p["reason"] == "test"


def test_promotion_refuses_a_model_that_loses_to_the_champion(storage, tmp_path):
    root = str(tmp_path)
    put_model(storage, root, "gbm-good", backtest({"2022-05-25": ((1.0, 2.0, 3.0), (2.0, 3.0, 4.0))}))
    put_model(storage, root, "gbm-worse", backtest({"2022-05-25": ((1.5, 2.5, 3.5), (2.0, 3.0, 4.0)),
                                                  "2022-05-26": ((0.5, 0.5, 0.5), (2.0, 3.0, 4.0))}))
    first = registry.promote(storage, root, "gbm-good", now=NOW)
    assert not first["forced"] and first["previous"] is None
    with pytest.raises(registry.PromotionRefused, match="loses to the champion gbm-good on the common backtest days "
                                                         "2022-05-25: MAE 3.375 vs 2.875"):
        registry.promote(storage, root, "gbm-worse", now=NOW)
    assert registry.read_champion(storage, root)["version"] == "gbm-good"
    put_model(storage, root, "gbm-better", backtest({"2022-05-25": ((0.9, 1.9, 2.9), (2.0, 3.0, 4.0))}))
    p = registry.promote(storage, root, "gbm-better", now=NOW)
    assert (p["version"], p["previous"], p["forced"]) == ("gbm-better", "gbm-good", False)
    assert registry.champion_model_uri(storage, root) == registry.model_uri(root, "gbm-better")
    listed = {r["version"]: r for r in registry.describe(storage, root)}
    assert [v for v, r in listed.items() if r["champion"]] == ["gbm-better"]
    assert listed["gbm-worse"]["backtest"]["days"] == ["2022-05-25", "2022-05-26"]


def test_a_model_without_backtest_day_needs_force(storage, tmp_path):
    root = str(tmp_path)
    put_model(storage, root, "gbm-short", {"candidates": ["gbm"], "days": [], "skipped_days": [], "summary": {}})
    with pytest.raises(registry.PromotionRefused, match="no backtest day"):
        registry.promote(storage, root, "gbm-short", now=NOW)


def test_the_pointer_is_one_object_replaced_whole(storage, tmp_path):
    root = str(tmp_path)
    put_model(storage, root, "gbm-a", backtest({"2022-05-25": ((1, 2, 3), (2, 3, 4))}))
    registry.promote(storage, root, "gbm-a", now=NOW)
    names = sorted(p.name for p in (tmp_path / "models").iterdir())
    assert names == ["champion", "gbm-a"], "no temporary file is left beside the pointer"
    assert json.loads((tmp_path / "models" / "champion").read_text())["version"] == "gbm-a"


@pytest.mark.parametrize("pointer", ["{not json", "[]", '{"version": "gbm-x"}', '{"version": 3, "model_uri": []}'])
def test_a_corrupt_champion_pointer_is_a_config_error_naming_it(storage, tmp_path, pointer):
    storage.write_text(registry.champion_uri(str(tmp_path)), pointer)
    with pytest.raises(ConfigError, match=rf"{registry.champion_uri(str(tmp_path))}: not a champion pointer.*"
                                          r"velibcast models promote VERSION --force"):
        registry.read_champion(storage, str(tmp_path))


def test_promote_force_replaces_a_corrupt_champion_pointer(storage, tmp_path):
    root = str(tmp_path)
    put_model(storage, root, "gbm-a", backtest({"2022-05-25": ((1, 2, 3), (2, 3, 4))}))
    storage.write_text(registry.champion_uri(root), "[]")
    with pytest.raises(registry.CorruptPointer):
        registry.promote(storage, root, "gbm-a", now=NOW)
    registry.promote(storage, root, "gbm-a", force=True, reason="the pointer was corrupt", now=NOW)
    assert registry.read_champion(storage, root)["version"] == "gbm-a"


@pytest.mark.parametrize("version", ["../../x", "..", ".", "a/b", "/x", "a\\b", "", "-x", "gbm x"])
def test_a_name_that_is_not_a_version_is_refused_and_the_champion_stays_under_models(storage, tmp_path, version):
    root = str(tmp_path / "a" / "b")
    # a model where `promote ../../x` would find one: outside models/
    storage.write_bytes(str(tmp_path / "a" / "x" / "model.tar.gz"), untrained_archive(3))
    with pytest.raises(ConfigError, match=r"is not a model version name.*velibcast models list"):
        registry.promote(storage, root, version, force=True, now=NOW)
    assert registry.read_champion(storage, root) is None


def test_version_names_are_one_rule_for_training_and_promotion(storage, tmp_path):
    with pytest.raises(ConfigError, match="is not a model version name"):
        package.write_model(storage, str(tmp_path), "../escape", untrained_archive(3))
    assert not (tmp_path / "escape").exists()


def test_a_model_never_trained_on_data_is_listed_without_a_training_span(storage, tmp_path):
    root = str(tmp_path)
    package.write_model(storage, root, "gbm-untrained", untrained_archive(3))  # its training_data is null
    [row] = registry.describe(storage, root)
    assert row["version"] == "gbm-untrained" and not row["champion"]
    assert row["training_data"] == {"start": None, "end": None, "samples": None}
    assert row["backtest"] is None
