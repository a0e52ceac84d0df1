"""`velibcast ingest` as a user runs it: it writes the hourly states of the days asked, says per date
what it did, and a second run over the same captures has nothing to do."""

from datetime import date

import yaml

from tests.flows.test_fl_cli import user_error, velibcast
from velibcast import storage as st
from velibcast.datasets import ingest as ing
from velibcast.flows.ingest import DEFAULT_DAYS_BACK


def test_ingest_writes_each_dates_states_and_a_second_run_leaves_them_unchanged(e2e, tmp_path):
    storage = st.Storage()
    root = tmp_path / "store"
    e2e.copy_snapshots(storage, str(root))
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump({"store": {"root": str(root)}}))
    args = ("ingest", "--config", str(cfg), "--end", "2022-05-26T09:00Z", "--days-back", "1")

    first = velibcast(*args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    for day in ("2022-05-25", "2022-05-26"):
        assert sorted(p.name for p in (root / "states" / f"date={day}").iterdir()) == [
            ing.LEDGER_NAME, *(f"part-{k:02d}.parquet" for k in range(24))]
    stored = ing.read_partition(storage, str(root), date(2022, 5, 26))
    assert stored is not None and stored.table.num_rows > 1000
    lines = first.stdout.splitlines()
    folder = root / "states" / "date=2022-05-26"
    assert lines[0].startswith("2022-05-25: created") and lines[1] == f"2022-05-26: created, 24 hours written  {folder}/"
    assert lines[2].startswith("2 dates written, 0 unchanged; ") and "captures parsed" in lines[2]
    parsed = int(lines[2].split("; ")[1].split()[0])
    assert parsed > 24

    again = velibcast(*args, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines() == ["2022-05-25: unchanged", "2022-05-26: unchanged",
                                         "0 dates written, 2 unchanged; 0 captures parsed"]


def test_ingest_over_a_day_without_captures_says_so_and_writes_nothing(tmp_path):
    root = tmp_path / "store"
    (root / "velib" / "snapshots").mkdir(parents=True)
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump({"store": {"root": str(root)}}))
    r = velibcast("ingest", "--config", str(cfg), "--start", "2022-05-26T00:00Z", "--end", "2022-05-27T00:00Z",
                  "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert '"written": []' in r.stdout and not (root / "states").exists()
    r = velibcast("ingest", "--config", str(cfg), "--start", "2022-05-26T00:00Z", "--end", "2022-05-27T00:00Z",
                  cwd=tmp_path)
    assert r.stdout.splitlines()[0] == "2022-05-26: no captures"


def test_ingest_refuses_a_start_without_end_and_days_back_with_start(tmp_path):
    user_error(velibcast("ingest", "--start", "2022-05-26T00:00Z", cwd=tmp_path), "--start needs --end")
    user_error(velibcast("ingest", "--start", "2022-05-26T00:00Z", "--end", "2022-05-27T00:00Z", "--days-back", "1",
                         cwd=tmp_path), "--days-back")
    user_error(velibcast("ingest", "--start", "2022-05-27T00:00Z", "--end", "2022-05-26T00:00Z", cwd=tmp_path),
               "must be after --start")


def test_ingest_help_gives_the_scheduled_flows_days_back(tmp_path):
    r = velibcast("ingest", "--help", cwd=tmp_path)
    assert r.returncode == 0 and f"flow's, {DEFAULT_DAYS_BACK}:" in " ".join(r.stdout.split())
