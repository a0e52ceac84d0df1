"""`velibcast snapshots import` and `velibcast windows` through argparse, as flows/cli.py wires them."""

import argparse
import json

from tests.datasets.ds_helpers import INFO_2022, SERIES
from velibcast.datasets import cli


def run(argv):
    p = argparse.ArgumentParser(prog="velibcast")
    sub = p.add_subparsers(dest="command", required=True)
    cli.register(sub)
    args = p.parse_args(argv)
    return args.func(args)


def test_import_then_windows(tmp_path, storage, capsys):
    src = tmp_path / "src"
    src.mkdir()
    for name in ["data_2022-05-23T21-36-58Z.csv", "data_2022-05-23T23-38-08Z.csv"]:
        (src / name).write_bytes(storage.read_bytes(f"{SERIES}/{name}"))
    root = str(tmp_path / "store")
    assert run(["snapshots", "import", "--format", "csv-series", "--src", str(src),
                "--station-info", INFO_2022, "--dest", root]) == 0
    assert json.loads(capsys.readouterr().out)["snapshots_written"] == 2


def test_windows_command_on_real_store(real_store, tmp_path, capsys):
    out = str(tmp_path / "inputs" / "run1")
    assert run(["windows", "--snapshots", real_store, "--start", "2022-05-25T08:00Z", "--end", "2022-05-25T10:00Z",
                "--format", "jsonl", "--out", out, "--shards", "2", "--manifest-file", str(tmp_path / "m.json")]) == 0
    printed = capsys.readouterr().out
    assert "windows for 2 origins" in printed
    rep = json.loads((tmp_path / "inputs" / "windows-report-run1.json").read_text())
    assert rep["summary"]["windows_emitted"] > 2000 and len(rep["shards"]) == 2
    assert rep["report"]["by_kind"]["windows_skipped"]["not_renting"] > 0
    assert rep["report"]["by_kind"]["notes"]["filled_history"] > 0
    assert rep["data_quality"]["stations"] > 1400
    assert rep["layout"]["input_filter"] == "$.features"
    lines = [l for s in rep["shards"] for l in open(s).read().splitlines()]
    assert len(lines) == rep["summary"]["windows_emitted"]


def test_windows_as_of_a_night_forecasts_from_the_latest_hour_with_data(real_store, tmp_path, capsys):
    """02:30 Europe/Paris on 2022-05-25, inside the scraper's nightly gap: the origin is 00:00Z."""
    out = str(tmp_path / "inputs" / "night")
    assert run(["windows", "--snapshots", real_store, "--as-of", "2022-05-25T02:30+02:00", "--out", out]) == 0
    printed = capsys.readouterr().out
    assert "windows for 1 origins" in printed and "open station-origins have a window" in printed
    rep = json.loads((tmp_path / "inputs" / "windows-report-night.json").read_text())
    assert rep["as_of"] == "2022-05-25T00:30:00Z"
    assert (rep["first_origin"], rep["last_origin"]) == ("2022-05-25T00:00Z", "2022-05-25T00:00Z")
    assert rep["summary"]["open_coverage"] > 0.99
