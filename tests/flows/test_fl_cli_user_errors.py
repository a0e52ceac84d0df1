"""User errors that ended in a traceback, an "unexpected" exit 1 or a silent exit 0: each is one
line (what, where, the fix) and exit status 2, before Prefect starts or any heavy work."""

import subprocess
import sys

import pytest

from tests.flows.test_fl_cli import HALF_OPEN, config, user_error, velibcast
from tests.helpers import REPO
from velibcast.storage import Storage
from velibcast.training import package
from velibcast.training.synthetic import untrained_archive

EMPTY_AND_REVERSED = [("2022-05-24T00:00Z", "2022-05-24T00:00Z"), ("2022-05-25T00:00Z", "2022-05-23T00:00Z")]


def _store(tmp_path, **extra):
    return config(tmp_path, {"store": {"root": str(tmp_path / "store")}, **extra})


def _heavy_modules_after(tmp_path, argv: list[str]) -> str:
    """`main(argv)`'s exit status and which heavy modules it had imported by then."""
    code = (f"import sys; from velibcast.flows.cli import main; rc = main({argv!r}); "
            "print(rc, [m for m in ('prefect', 'torch', 'pyarrow') if m in sys.modules])")
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    return r.stdout.strip()


@pytest.mark.parametrize("start, end", EMPTY_AND_REVERSED)
def test_train_with_an_empty_or_reversed_range_exits_2_before_prefect_loads(tmp_path, start, end):
    cfg = _store(tmp_path)
    user_error(velibcast("train", "--config", cfg, "--start", start, "--end", end, cwd=tmp_path),
               f"--end {end[:16]}", "must be after --start", HALF_OPEN)
    assert _heavy_modules_after(tmp_path, ["train", "--config", cfg, "--start", start, "--end", end]) == "2 []"


def test_train_with_a_reversed_span_in_the_config_names_the_config_keys(tmp_path):
    cfg = _store(tmp_path, model={"train_start": "2022-05-25T00:00Z", "train_end": "2022-05-23T00:00Z"})
    user_error(velibcast("train", "--config", cfg, cwd=tmp_path), cfg, "model.train_end", "model.train_start",
               HALF_OPEN)


def test_train_with_a_time_in_the_config_that_is_not_one_names_the_key(tmp_path):
    cfg = _store(tmp_path, model={"train_start": "yesterday", "train_end": "2022-05-23T00:00Z"})
    user_error(velibcast("train", "--config", cfg, cwd=tmp_path), cfg, "model.train_start", "'yesterday'",
               "write it like 2022-05-26T06:00Z")


@pytest.mark.parametrize("mode", [["--backtest"], ["--model", "model.tar.gz"]])
@pytest.mark.parametrize("start, end", EMPTY_AND_REVERSED)
def test_evaluate_with_an_empty_or_reversed_range_exits_2_before_any_work(tmp_path, mode, start, end):
    argv = ["evaluate", *mode, "--config", _store(tmp_path), "--start", start, "--end", end]
    user_error(velibcast(*argv, cwd=tmp_path), "must be after --start", HALF_OPEN)
    assert _heavy_modules_after(tmp_path, argv) == "2 []"


def test_evaluate_backtest_over_a_span_with_no_snapshot_says_so_and_exits_2(tmp_path):
    err = user_error(velibcast("evaluate", "--backtest", "--config", _store(tmp_path), "--start", "2022-05-23T00:00Z",
                               "--end", "2022-05-26T00:00Z", cwd=tmp_path),
                     "no snapshot under", str(tmp_path / "store"), "2022-05-23T00:00Z", "snapshots import")
    assert "day" not in err.split("no snapshot")[0]  # no table header before the error


def test_evaluate_backtest_with_no_day_it_can_score_says_why_and_exits_2(tmp_path):
    """Origins on one day only (the first day is their history): no earlier day to train on."""
    r = velibcast("evaluate", "--backtest", "--families", "gbm", "--snapshots", str(REPO / "sample_data"),
                  "--start", "2022-05-23T00:00Z", "--end", "2022-05-24T12:00Z", cwd=tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("error: no day of [2022-05-23T00:00Z, 2022-05-24T12:00Z) could be backtested"), last
    assert "2022-05-24: no training sample has a target before this day" in last
    assert "widen the span" in last
    assert r.stdout == ""  # no empty table


@pytest.mark.parametrize("pointer", ["{not json", "[]", '{"version": "gbm-x"}', '{"version": 3, "model_uri": []}'])
@pytest.mark.parametrize("command", ["run", "models show"])
def test_a_corrupt_champion_pointer_names_the_pointer_and_the_fix(tmp_path, pointer, command):
    pointer_file = tmp_path / "store" / "models" / "champion"
    pointer_file.parent.mkdir(parents=True)
    pointer_file.write_text(pointer)
    cfg = _store(tmp_path)
    # `models` takes --config before its subcommand
    argv = ["run", "--run-date", "2022-05-26", "--config", cfg] if command == "run" else ["models", "--config", cfg,
                                                                                          "show"]
    user_error(velibcast(*argv, cwd=tmp_path), str(pointer_file), "not a champion pointer",
               "velibcast models promote VERSION --force")


@pytest.mark.parametrize("doc, needle", [
    ({"store": {"root": [1, 2]}}, "store.root=[1, 2]"),
    ({"run": {"min_station_coverage": "abc"}}, "run.min_station_coverage='abc'"),
])
def test_a_config_value_of_the_wrong_type_exits_2_naming_the_key(tmp_path, doc, needle):
    cfg = config(tmp_path, doc)
    for argv in (["run", "--run-date", "2022-05-26", "--config", cfg], ["models", "--config", cfg, "list"],
                 ["train", "--config", cfg]):
        user_error(velibcast(*argv, cwd=tmp_path), cfg, needle)


@pytest.mark.parametrize("product, fix", [
    ("evaluation", "velibcast run --run-date 2022-05-26 --config "),
    ("day-ahead", "velibcast run --product day-ahead --as-of TIME --config "),
])
def test_score_with_nothing_published_for_the_date_exits_2_saying_what_to_run(tmp_path, product, fix):
    (tmp_path / "store").mkdir()
    cfg = _store(tmp_path)
    err = user_error(velibcast("score", "--run-date", "2022-05-26", "--product", product, "--config", cfg, cwd=tmp_path),
                     f"no {product} forecasts published for 2022-05-26", fix + cfg)
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("argv", [["score", "--run-date", "2022-05-26"], ["run", "--product", "day-ahead"],
                                  ["run", "--run-date", "2022-05-26"],
                                  ["backfill", "--start-date", "2022-05-25", "--end-date", "2022-05-26"]])
def test_a_store_root_that_does_not_exist_is_named_as_such_not_as_a_missing_model(tmp_path, argv):
    root = tmp_path / "elsewhere" / "data"
    cfg = _store(tmp_path, store={"root": str(root)})
    err = user_error(velibcast(*argv, "--config", cfg, cwd=tmp_path), f"store.root {root} does not exist", cfg)
    assert "champion" not in err and "no snapshot" not in err
    assert not root.exists()  # a mistyped root is not created


@pytest.mark.parametrize("command", [["list"], ["show"], ["show", "gbm-x"], ["promote", "gbm-x"]])
def test_models_commands_on_a_store_root_that_does_not_exist_name_it_instead_of_finding_no_model(tmp_path, command):
    root = tmp_path / "elsewhere" / "data"
    cfg = _store(tmp_path, store={"root": str(root)})
    # `models` takes --config before its subcommand
    err = user_error(velibcast("models", "--config", cfg, *command, cwd=tmp_path),
                     f"store.root {root} does not exist", cfg)
    assert "no model" not in err and "champion" not in err
    assert not root.exists()


def test_models_list_shows_a_model_never_trained_on_data(tmp_path):
    package.write_model(Storage(), str(tmp_path / "store"), "gbm-untrained", untrained_archive(3))
    r = velibcast("models", "--config", _store(tmp_path), "list", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "gbm-untrained" in r.stdout and "not trained on data" in r.stdout and "None" not in r.stdout
