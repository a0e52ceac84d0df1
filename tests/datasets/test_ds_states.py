"""The stored hourly states: one row per station and hour by the states rule, kept up to date by
ingest whatever order captures arrive in, readable by DuckDB as the docs show."""

import gzip
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
from datetime import date, datetime, timedelta

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs

from tests.datasets.ds_helpers import rec, utc
from tests.datasets.test_ds_windows import assembled, inputs_as_bytes, naive_windows, store_cut_at
from tests.helpers import REPO
from velibcast import storage as st
from velibcast.datasets import ingest as ing
from velibcast.datasets.report import SkipReport
from velibcast.datasets.snapshots import list_snapshots, write_snapshot
from velibcast.datasets.states import LATE_CAPTURE_HOURS, TABLE_RULE, HourStates, StationRegistry, hours_of_date
from velibcast.datasets.synthetic import generate_store
from velibcast.datasets.windows import build_state_grid, origins_for_range, origins_for_run_date
from velibcast.timeutil import UTC, key_time, parse_key_time
from velibcast.transform_code.velib_features import FEATURE_COLUMNS

H = timedelta(hours=1)
M = timedelta(minutes=1)
DOC = (REPO / "docs" / "states-dataset.md").read_text()


def rows(storage, root, d):
    part = ing.read_partition(storage, root, d)
    return None if part is None else part.table.to_pylist()


def all_rows(storage, root, days):
    return {d: rows(storage, root, d) for d in days}


VALUES = ("numbikesavailable", "mechanical", "ebike", "numdocksavailable", "capacity", "is_installed",
          "is_renting", "is_returning", "coordonnees_geo")


def naive_state(snapshot_root: str, code: str, h: datetime):
    """Straight from the rule, with its own reader: (observed, captured, record) of `code` at h. Of
    the captures of [h - lookback, h + lag], those holding its latest duedate <= h; the values of
    the last of them, captured since the first of the last run of them holding those values."""
    lookback, lag = TABLE_RULE.lookback, TABLE_RULE.lag
    assert lookback is not None and lag is not None
    held = []
    for dirpath, _, files in os.walk(os.path.join(snapshot_root, "velib", "snapshots")):
        for name in files:
            cap = parse_key_time(name[: -len(".jsonl.gz")])
            if not (h - lookback <= cap <= h + lag):
                continue
            for line in gzip.decompress(open(os.path.join(dirpath, name), "rb").read()).splitlines():
                d = json.loads(line)
                obs = datetime.fromisoformat(d["duedate"]) if d.get("duedate") else cap
                if d["stationcode"] == code and obs <= h:
                    held.append((obs, cap, d))
    if not held:
        return None
    latest = max(obs for obs, _, _ in held)
    run = sorted((cap, d) for obs, cap, d in held if obs == latest)
    values = [tuple(d.get(k) for k in VALUES) for _, d in run]
    first = len(run) - 1
    while first > 0 and values[first - 1] == values[-1]:
        first -= 1
    return latest, run[first][0], run[-1][1]


# ---------------------------------------------------------------- the dataset and its readers
def test_a_date_holds_each_station_hour_by_the_rule_and_duckdb_answers_the_docs_query(real_store, storage, tmp_path):
    root = str(tmp_path / "store")
    result = ing.ingest(storage, real_store, root, utc("2022-05-24T00:00Z"), utc("2022-05-26T00:00Z"))
    assert result.written == ["2022-05-24", "2022-05-25"] and result.rebuilt == result.written
    table = ing.read_partition(storage, root, date(2022, 5, 25)).table
    keys = list(zip(table.column("station_code").to_pylist(), table.column("hour_ts").to_pylist()))
    assert len(keys) == len(set(keys)) > 24 * 1300  # one row per station and hour
    assert {h.hour for _, h in keys} == set(range(24))
    # the query of docs/states-dataset.md, run as written, on this store
    query = re.search(r"```sql\n(.*?)```", DOC, re.S).group(1).replace("s3://velibcast-prod/velibcast", root)
    got = duckdb.sql(query).fetchall()
    station = table.filter(ds.field("station_code") == "16107").sort_by("hour_ts").to_pylist()
    assert got == [(r["hour_ts"], r["bikes"], r["ebike"], r["docks"], r["observed_at"]) for r in station]
    assert len(got) == 24 and len({b for _, b, *_ in got}) > 3
    for k in (0, 7, 13, 23):  # the rows are the rule's, recomputed from the raw captures
        obs, cap, d = naive_state(real_store, "16107", datetime(2022, 5, 25, k, tzinfo=UTC))
        row = station[k]
        assert (row["bikes"], row["ebike"], row["mechanical"], row["docks"], row["capacity"]) == (
            d["numbikesavailable"], d["ebike"], d["mechanical"], d["numdocksavailable"], d["capacity"])
        assert row["observed_at"] == obs and row["captured_at"] == cap
        assert row["source_object"].endswith(f"{key_time(cap)}.jsonl.gz")
    # a date is its ledger and one object per hour; a run reading a few hours reads those objects
    folder = tmp_path / "store" / "states" / "date=2022-05-25"
    assert sorted(p.name for p in folder.iterdir()) == ["_ledger.json"] + [f"part-{k:02d}.parquet" for k in range(24)]
    assert len(result.hours_written) == 48
    part = ing.read_partition(storage, root, date(2022, 5, 25))
    for k in (0, 13):
        assert part.hour(k).to_pylist() == [r for r in table.to_pylist() if r["hour_ts"].hour == k]
    # pyarrow reads the partitions as one dataset, the date from the folder
    dataset = ds.dataset(st.join(root, "states"), format="parquet", partitioning="hive")
    assert dataset.schema.field("station_code").type == pa.string()  # read as strings
    assert dataset.count_rows() == table.num_rows + ing.read_partition(storage, root, date(2022, 5, 24)).table.num_rows


def stored_bytes(root, d):
    folder = os.path.join(root, "states", f"date={d.isoformat()}")
    return {name: open(os.path.join(folder, name), "rb").read() for name in sorted(os.listdir(folder))}


def test_an_ingest_with_nothing_new_writes_nothing(real_store, storage, tmp_path):
    root = str(tmp_path / "store")
    ing.ingest(storage, real_store, root, utc("2022-05-25T00:00Z"), utc("2022-05-26T00:00Z"))
    before = stored_bytes(root, date(2022, 5, 25))
    again = ing.ingest(storage, real_store, root, utc("2022-05-25T00:00Z"), utc("2022-05-26T00:00Z"))
    assert again.written == [] and again.unchanged == ["2022-05-25"] and again.captures_parsed == 0
    assert stored_bytes(root, date(2022, 5, 25)) == before


def test_a_date_of_the_one_object_per_date_layout_is_replaced_by_its_hours_and_never_counted_twice(storage, tmp_path):
    snaps, root = str(tmp_path / "snaps"), str(tmp_path / "store")
    t0 = utc("2022-05-25T00:00Z")
    for k in range(3):
        cap = t0 + k * H + 10 * M
        write_snapshot(storage, snaps, cap, [rec("A", bikes=k, due=cap.isoformat())])
    ing.ingest(storage, snaps, root, t0, t0 + 24 * H)
    folder = tmp_path / "store" / "states" / "date=2022-05-25"
    legacy = tmp_path / "legacy" / "states" / "date=2022-05-25"  # as an earlier velibcast wrote it: one object
    legacy.mkdir(parents=True)
    pq.write_table(ing.read_partition(storage, root, date(2022, 5, 25)).table, legacy / "part-0.parquet")
    legacy_root = str(tmp_path / "legacy")
    ing.ingest(storage, snaps, legacy_root, t0, t0 + 24 * H)
    assert sorted(p.name for p in legacy.iterdir()) == sorted(p.name for p in folder.iterdir())
    assert duckdb.sql(f"SELECT count(*) FROM read_parquet('{legacy_root}/states/*/*.parquet', hive_partitioning = true)"
                      ).fetchall()[0][0] == ing.read_partition(storage, legacy_root, date(2022, 5, 25)).table.num_rows > 0


def test_a_reader_settles_only_hours_whose_captures_are_all_ingested_and_taken_by_its_as_of(storage, tmp_path):
    snaps, root = str(tmp_path / "snaps"), str(tmp_path / "store")
    t0 = utc("2022-05-25T00:00Z")
    for k in range(24):
        cap = t0 + k * H + timedelta(minutes=10)
        write_snapshot(storage, snaps, cap, [rec("A", bikes=k, due=cap.isoformat())])
    ing.ingest(storage, snaps, root, t0, t0 + 24 * H)
    hours = hours_of_date(date(2022, 5, 25))

    def settled(as_of=None):
        refs = list_snapshots(storage, snaps, t0 - 5 * H, t0 + 36 * H, as_of=as_of)
        states = HourStates(hours, TABLE_RULE)
        partitions = ing.PartitionCache(storage, root)
        return ing.read_stored_states(partitions, states, StationRegistry(), refs, timedelta(hours=3)), states

    ok, states = settled()
    assert ok.all() and states.present.tolist() == [[False] + [True] * 23]  # first observed at 00:10
    # as of 12:30 every hour whose captures reach past 12:30 is read raw: its row may hold a later capture
    as_of = t0 + 12 * H + timedelta(minutes=30)
    ok, _ = settled(as_of)
    caps = [t0 + k * H + timedelta(minutes=10) for k in range(24)]
    assert ok.tolist() == [not any(as_of < c <= h + TABLE_RULE.lag for c in caps) for h in hours]
    assert ok[:2].all() and not ok[2:].any()
    # a capture not ingested yet: the hours it may change are not settled, the others are
    write_snapshot(storage, snaps, t0 + 5 * H + timedelta(minutes=40), [rec("A", bikes=99, due=(t0 + 5 * H).isoformat())])
    ok, _ = settled()
    assert ok.tolist() == [not (h - TABLE_RULE.lookback <= t0 + 5 * H + timedelta(minutes=40) <= h + TABLE_RULE.lag)
                           for h in hours]
    assert not ok.all() and ok.any()
    assert not ing.read_stored_states(ing.PartitionCache(storage, root), HourStates(hours, TABLE_RULE),
                                      StationRegistry(), [], timedelta(hours=2)).any()  # another staleness, another rule: none


# ---------------------------------------------------------------- arrival order does not matter
T0 = utc("2022-05-24T20:00Z")
CAPTURES = [T0 + k * H + timedelta(minutes=7 * k % 50) for k in range(10)]  # 20:07 .. 05:xx: two UTC dates
DAYS = [date(2022, 5, 24), date(2022, 5, 25)]


def capture_records(k: int, variant: int) -> list[dict]:
    cap = CAPTURES[k]
    out = []
    for s, code in enumerate(("A", "B", "C")):
        lag = timedelta(minutes=(37 * k + 11 * s + 53 * variant) % (4 * 60))  # observed up to 4 h before capture
        if (k + s + variant) % 5 != 0:  # stations missing from some captures
            out.append(rec(code, bikes=(k * 3 + s + variant) % 20, docks=1, due=(cap - lag).isoformat()))
    return out


def writes_and_ingests(captures: list, max_size: int):
    """Events for play_then_rebuild: ("write", k, variant) writes capture k (a first arrival, a late
    one, a correction or a replay, by what was written before), ("ingest", ...) ingests, in any order."""
    return hs.lists(hs.tuples(hs.sampled_from(["write", "ingest"]), hs.integers(0, len(captures) - 1),
                              hs.integers(0, 2)), min_size=1, max_size=max_size)


events = writes_and_ingests(CAPTURES, 25)


@settings(max_examples=40, deadline=None, database=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(events=events)
def test_any_order_of_late_corrected_and_replayed_captures_gives_the_table_of_a_rebuild(storage, events):
    with tempfile.TemporaryDirectory() as tmp:
        snaps, root, _ = play_then_rebuild(storage, tmp, events, CAPTURES, capture_records)
        replay = ing.ingest(storage, snaps, root, utc("2022-05-24T00:00Z"), utc("2022-05-26T00:00Z"))
        assert replay.written == [] and replay.captures_parsed == 0


def play_then_rebuild(storage, tmp: str, events, times, records) -> tuple[str, str, str]:
    """Write captures (first arrival, late arrival, correction or replay of capture k) and ingest, in the
    order of `events`; ingest once more, then rebuild from scratch into another store, and check both
    stores hold the same rows. Returns (snapshots, store, rebuilt store)."""
    snaps, root, fresh = f"{tmp}/snaps", f"{tmp}/store", f"{tmp}/fresh"
    start, end = utc("2022-05-24T00:00Z"), utc("2022-05-26T00:00Z")
    for op, k, variant in events:
        if op == "write":
            write_snapshot(storage, snaps, times[k], records(k, variant))
        else:
            ing.ingest(storage, snaps, root, start, end)
    ing.ingest(storage, snaps, root, start, end)
    ing.ingest(storage, snaps, fresh, start, end)
    assert all_rows(storage, root, DAYS) == all_rows(storage, fresh, DAYS)
    return snaps, root, fresh


REPEATING = [T0 + k * H + 10 * M for k in range(8)]  # 20:10 .. 03:10: two UTC dates


def repeating_records(k: int, variant: int) -> list[dict]:
    """Records observed at this capture's time or one or two captures before (so often the time an
    earlier capture held), with values that repeat or change."""
    out = []
    for s, code in enumerate(("A", "B", "C")):
        due = REPEATING[max(0, k - (s + variant) % 3)] - 5 * M
        out.append(rec(code, bikes=(variant + s * k) % 2, due=due.isoformat()))
    return out


repeats = writes_and_ingests(REPEATING, 20)


@settings(max_examples=30, deadline=None, database=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(events=repeats)
def test_captures_repeating_or_changing_a_state_in_any_order_give_the_rule_and_the_table_of_a_rebuild(storage, events):
    with tempfile.TemporaryDirectory() as tmp:
        snaps, _, fresh = play_then_rebuild(storage, tmp, events, REPEATING, repeating_records)
        table = {(r["station_code"], r["hour_ts"]): r for d in DAYS for r in rows(storage, fresh, d) or []}
        for h in (utc("2022-05-24T22:00Z"), utc("2022-05-25T01:00Z"), utc("2022-05-25T03:00Z")):
            for code in ("A", "B", "C"):
                want = naive_state(snaps, code, h)
                got = table.get((code, h))
                assert (want is None and got is None) or (
                    (got["observed_at"], got["captured_at"], got["bikes"]) == (want[0], want[1], want[2]["numbikesavailable"]))


def test_late_and_corrected_captures_are_folded_in_and_only_their_dates_rewritten(storage, tmp_path):
    snaps, root = str(tmp_path / "snaps"), str(tmp_path / "store")
    start, end = utc("2022-05-24T00:00Z"), utc("2022-05-26T00:00Z")
    for k in (0, 1, 2, 3, 8, 9):
        write_snapshot(storage, snaps, CAPTURES[k], capture_records(k, 0))
    ing.ingest(storage, snaps, root, start, end)
    before = all_rows(storage, root, DAYS)
    # uploaded again with the same bytes: a new version locally (size and mtime; on S3 the ETag, the
    # bytes' MD5, would not change), so its dates are rebuilt, to the same rows
    write_snapshot(storage, snaps, CAPTURES[1], capture_records(1, 0))
    again = ing.ingest(storage, snaps, root, start, end)
    assert again.rebuilt == again.written == ["2022-05-24", "2022-05-25"] and again.captures_parsed == 6
    assert all_rows(storage, root, DAYS) == before
    # late: 02:42, between captures the hours it reaches already hold; whether its records repeat a
    # state depends on the captures around it, so those hours are rebuilt from their captures
    write_snapshot(storage, snaps, CAPTURES[6], capture_records(6, 0))
    late = ing.ingest(storage, snaps, root, start, end)
    assert late.written == late.rebuilt == ["2022-05-24", "2022-05-25"] and late.captures_parsed == 7
    write_snapshot(storage, snaps, utc("2022-05-25T13:00Z"), capture_records(9, 0))  # reaches the second date only
    late = ing.ingest(storage, snaps, root, start, end)
    assert late.written == ["2022-05-25"] and late.unchanged == ["2022-05-24"] and late.captures_parsed == 1
    write_snapshot(storage, snaps, CAPTURES[2], capture_records(2, 1))  # corrected: both dates may change
    corrected = ing.ingest(storage, snaps, root, start, end)
    assert corrected.rebuilt == corrected.written == ["2022-05-24", "2022-05-25"]


def hour_rows(storage, root, d):
    """Each hour's rows as its object holds them, committed by the date's ledger or not."""
    part = ing.read_partition(storage, root, d)
    return [part.read_hour(k)[1].to_pylist() for k in range(24)]


def test_a_new_capture_rewrites_only_the_hours_whose_rows_it_changes(storage, tmp_path):
    snaps, root, fresh = str(tmp_path / "snaps"), str(tmp_path / "store"), str(tmp_path / "fresh")
    d, t0 = date(2022, 5, 25), utc("2022-05-25T00:00Z")
    frozen = rec("B", bikes=3, due=(t0 + 3 * H).isoformat())  # a station whose feed stopped at 03:00
    for k in range(15):
        cap = t0 + k * H + timedelta(minutes=10)
        write_snapshot(storage, snaps, cap, [rec("A", bikes=k, due=cap.isoformat()), frozen])
    ing.ingest(storage, snaps, root, t0, t0 + 24 * H)

    def step(cap, records, expected_hours):
        before, objects = hour_rows(storage, root, d), stored_bytes(root, d)
        write_snapshot(storage, snaps, cap, records)
        result = ing.ingest(storage, snaps, root, t0, t0 + 24 * H)
        after, now = hour_rows(storage, root, d), stored_bytes(root, d)
        changed = [k for k in range(24) if after[k] != before[k]]
        assert result.hours_written == [f"2022-05-25T{k:02d}" for k in changed] and changed == expected_hours
        assert [k for k in range(24) if now[f"part-{k:02d}.parquet"] != objects[f"part-{k:02d}.parquet"]] == changed
        assert result.captures_parsed == 1 and result.rebuilt == []

    # observed at 15:40: it is the state of 16:00 .. 19:00 only (the rule's 4 h reach), earlier hours unread
    step(t0 + 15 * H + 40 * M, [rec("A", bikes=40, due=(t0 + 15 * H + 40 * M).isoformat())], [16, 17, 18, 19])
    # the frozen record again, in the latest capture: it repeats B's state at the hours it reaches
    # (04:40 .. 20:40), which keep citing the capture they first read it in; only 19:00 and 20:00,
    # whose captures (15:00 on) held no B until now, get a row
    step(t0 + 16 * H + 40 * M, [frozen], [19, 20])
    # observed at the same time with other counts: the later capture's values, in every hour it reaches
    step(t0 + 17 * H + 40 * M, [rec("B", bikes=4, due=(t0 + 3 * H).isoformat())], list(range(6, 22)))
    b_at_10 = next(r for r in hour_rows(storage, root, d)[10] if r["station_code"] == "B")
    assert (b_at_10["observed_at"], b_at_10["captured_at"], b_at_10["bikes"]) == (t0 + 3 * H, t0 + 17 * H + 40 * M, 4)
    ing.ingest(storage, snaps, fresh, t0, t0 + 24 * H)
    assert all_rows(storage, root, [d]) == all_rows(storage, fresh, [d])


class Reading(st.Storage):
    """Local storage that keeps the URIs it read."""

    def __init__(self):
        super().__init__()
        self.uris: list[str] = []

    def read_bytes(self, uri, *args, **kwargs):
        self.uris.append(uri)
        return super().read_bytes(uri, *args, **kwargs)


def test_a_capture_repeating_stalled_stations_records_rewrites_only_the_hours_whose_rows_change(storage, tmp_path):
    """Stations whose feed stalled repeat their record in every capture: a capture that only repeats
    a state leaves its rows as they are (captured_at names the capture the feed first showed it
    in), so the ingest writes the hours of the new observations only, as for a fresh feed."""
    snaps, root, fresh = str(tmp_path / "snaps"), str(tmp_path / "store"), str(tmp_path / "fresh")
    d, t0 = date(2022, 5, 25), utc("2022-05-25T00:00Z")
    stalled = {c: rec(c, bikes=5, docks=7, due=(t0 + 2 * H).isoformat()) for c in ("S1", "S2", "S3")}

    def capture(k, **changed):
        cap = t0 + k * H + 10 * M
        records = [rec(c, bikes=k % 9, due=cap.isoformat()) for c in ("A", "B")]
        return cap, records + [changed.get(c, r) for c, r in stalled.items()]

    for k in range(2, 15):  # the stalled stations' record, observed at 02:00, in every capture from 02:10
        write_snapshot(storage, snaps, *capture(k))
    ing.ingest(storage, snaps, root, t0, t0 + 24 * H)
    before, objects = hour_rows(storage, root, d), stored_bytes(root, d)
    write_snapshot(storage, snaps, *capture(15))  # 15:10, reaching 03:10 .. 19:10
    reading = Reading()
    result = ing.ingest(reading, snaps, root, t0, t0 + 24 * H)
    after, now = hour_rows(storage, root, d), stored_bytes(root, d)
    # only the hours of A's and B's new observation (15:10) change: 16:00 .. 19:00, the only ones
    # read (19:00 says the stalled stations' records repeat their state)
    assert sorted(re.findall(r"part-(\d\d)", " ".join(reading.uris))) == ["16", "17", "18", "19"]
    assert result.hours_written == [f"2022-05-25T{k:02d}" for k in (16, 17, 18, 19)]
    assert [k for k in range(24) if after[k] != before[k]] == [16, 17, 18, 19]
    assert [k for k in range(24) if now[f"part-{k:02d}.parquet"] != objects[f"part-{k:02d}.parquet"]] == [16, 17, 18, 19]
    assert result.captures_parsed == 1 and result.rebuilt == []
    # S1's state at 03:00, 10:00 and 19:00: observed at 02:00, cited from the first capture an hour
    # reads that holds it (it reads those taken 4 h before it to 12 h after it)
    s1 = {k: next(r for r in after[k] if r["station_code"] == "S1") for k in (3, 10, 19)}
    assert {k: (r["observed_at"], r["captured_at"]) for k, r in s1.items()} == {
        3: (t0 + 2 * H, t0 + 2 * H + 10 * M), 10: (t0 + 2 * H, t0 + 6 * H + 10 * M),
        19: (t0 + 2 * H, t0 + 15 * H + 10 * M)}
    # S2 observed at the same time with other counts: the later capture's values, wherever it reaches
    write_snapshot(storage, snaps, *capture(16, S2=rec("S2", bikes=6, docks=6, due=(t0 + 2 * H).isoformat())))
    result = ing.ingest(storage, snaps, root, t0, t0 + 24 * H)
    assert result.hours_written == [f"2022-05-25T{k:02d}" for k in range(5, 21)]
    s2 = next(r for r in hour_rows(storage, root, d)[10] if r["station_code"] == "S2")
    assert (s2["bikes"], s2["captured_at"]) == (6, t0 + 16 * H + 10 * M)
    for k in (3, 10, 20):  # the rule, recomputed from the raw captures
        for code in ("S1", "S2", "A"):
            obs, cap, raw = naive_state(snaps, code, t0 + k * H)
            row = next(r for r in hour_rows(storage, root, d)[k] if r["station_code"] == code)
            assert (row["observed_at"], row["captured_at"], row["bikes"]) == (obs, cap, raw["numbikesavailable"])
    ing.ingest(storage, snaps, fresh, t0, t0 + 24 * H)
    assert all_rows(storage, root, [d]) == all_rows(storage, fresh, [d])


def test_a_store_on_s3_keeps_its_hours_as_a_local_one_and_a_late_capture_rewrites_only_its_hours(s3_root, tmp_path):
    storage = st.Storage()
    local = str(tmp_path / "local")
    t0, d = utc("2022-05-25T00:00Z"), date(2022, 5, 25)
    for k in range(6):
        cap = t0 + k * H + 10 * M
        for root in (s3_root, local):
            write_snapshot(storage, root, cap, [rec("A", bikes=k, due=cap.isoformat()), rec("B", bikes=k + 1, due=cap.isoformat())])
    for root in (s3_root, local):
        assert ing.ingest(storage, root, root, t0, t0 + 24 * H).written == ["2022-05-25"]
    assert hour_rows(storage, s3_root, d) == hour_rows(storage, local, d)
    late = t0 + 6 * H + 20 * M
    write_snapshot(storage, s3_root, late, [rec("A", bikes=50, due=late.isoformat())])
    again = ing.ingest(storage, s3_root, s3_root, t0, t0 + 24 * H)
    assert again.hours_written == [f"2022-05-25T{k:02d}" for k in range(7, 11)] and again.captures_parsed == 1
    assert ing.ingest(storage, s3_root, s3_root, t0, t0 + 24 * H).written == []  # its ETag unchanged: nothing
    assert ing.read_states(storage, s3_root, s3_root, t0, t0 + 24 * H).to_pylist() == \
        ing.read_states(storage, str(tmp_path / "none"), s3_root, t0, t0 + 24 * H).to_pylist()


def test_the_rule_reaches_late_captures_as_far_as_the_window_path_reads():
    assert TABLE_RULE.lag == timedelta(hours=LATE_CAPTURE_HOURS)


# ---------------------------------------------------------------- a killed ingest
_DYING_INGEST = """
import os, signal, sys
from datetime import datetime
from velibcast import storage as st
from velibcast.datasets import ingest as ing

class Dying(st.Storage):
    # dies by SIGKILL writing the hour object named `dies_at`: its bytes half written, not renamed
    def write_bytes(self, uri, data, content_type=None):
        if uri.endswith(dies_at):
            p = st.local_path(uri)
            (p.parent / ("_tmp-dying-" + p.name + ".tmp")).write_bytes(data[: len(data) // 2])
            os.kill(os.getpid(), signal.SIGKILL)
        super().write_bytes(uri, data, content_type)

snaps, root, start, end, dies_at = sys.argv[1:6]
ing.ingest(Dying(), snaps, root, datetime.fromisoformat(start), datetime.fromisoformat(end))
"""


def ingest_dying_at(snaps, root, start, end, dies_at):
    child = subprocess.run([sys.executable, "-c", _DYING_INGEST, snaps, root, start.isoformat(), end.isoformat(),
                            dies_at], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert child.returncode == -signal.SIGKILL, child.stderr


def committed(storage, root, d):
    """A date as velibcast's readers take it: each hour's rows when its object is the one the
    date's ledger committed, else None."""
    part = ing.read_partition(storage, root, d)
    return [None if (t := part.hour(k)) is None else t.to_pylist() for k in range(24)]


def test_a_killed_ingest_leaves_every_date_old_or_new_and_the_next_one_completes_it(storage, tmp_path):
    snaps, root, fresh = str(tmp_path / "snaps"), str(tmp_path / "store"), str(tmp_path / "fresh")
    start, end = utc("2024-01-01T00:00Z"), utc("2024-01-04T00:00Z")
    days = ing.dates_of(start, end)
    generate_store(storage, snaps, 50, 3, start=start, missed_capture_rate=0)
    ing.ingest(storage, snaps, root, start, end)
    old = {d: hour_rows(storage, root, d) for d in days}
    # corrections of the captures of 06:00 .. 12:00 of each date: every date must be rewritten
    for d in days:
        for cap in list_snapshots(storage, snaps, datetime(d.year, d.month, d.day, 6, tzinfo=UTC),
                                  datetime(d.year, d.month, d.day, 12, tzinfo=UTC)):
            body = gzip.decompress(storage.read_bytes(cap.uri)).replace(b'"numbikesavailable":', b'"numbikesavailable":1')
            storage.write_bytes(cap.uri, gzip.compress(body, mtime=0))
    ing.ingest(storage, snaps, fresh, start, end)
    new = {d: hour_rows(storage, fresh, d) for d in days}
    assert all(old[d] != new[d] for d in days)
    changes = {d: [k for k in range(24) if old[d][k] != new[d][k]] for d in days}  # the hours the correction changes
    # killed writing the third of them in the second date: two hours replaced, its ledger not written
    ingest_dying_at(snaps, root, start, end, f"date=2024-01-02/part-{changes[days[1]][2]:02d}.parquet")
    objects = {d: hour_rows(storage, root, d) for d in days}
    kinds = {d: ["new" if objects[d][k] == new[d][k] else "old" if objects[d][k] == old[d][k] else "half"
                 for k in changes[d]] for d in days}
    assert kinds[days[0]] == ["new"] * len(changes[days[0]]) and kinds[days[2]] == ["old"] * len(changes[days[2]])
    replaced = changes[days[1]][:2]
    assert kinds[days[1]] == ["new", "new"] + ["old"] * (len(changes[days[1]]) - 2)  # each object whole
    # velibcast's readers: the first date new, the others old; an hour replaced (rows changed or
    # not) is not taken from the store, not being the one the ledger committed, but folded from the
    # raw captures
    assert committed(storage, root, days[0]) == new[days[0]]
    view = committed(storage, root, days[1])
    assert all(view[k] is None for k in replaced) and all(v is None or v == old[days[1]][k] for k, v in enumerate(view))
    assert committed(storage, root, days[2]) == old[days[2]]
    assert ing.read_states(storage, root, snaps, start, end).to_pylist() == \
        ing.read_states(storage, fresh, snaps, start, end).to_pylist()
    # the half-written bytes sit under a name no reader takes for data
    stored = sum(len(rows) for d in days for rows in objects[d])
    assert duckdb.sql(f"SELECT count(*) FROM read_parquet('{root}/states/**/*.parquet', hive_partitioning = true)"
                      ).fetchall()[0][0] == stored
    assert ds.dataset(f"{root}/states", format="parquet", partitioning="hive").count_rows() == stored
    done = ing.ingest(storage, snaps, root, start, end)
    assert done.written == ["2024-01-02", "2024-01-03"] and done.unchanged == ["2024-01-01"]
    assert not {f"2024-01-02T{k:02d}" for k in replaced} & set(done.hours_written)  # kept, not redone
    assert {d: committed(storage, root, d) for d in days} == new


def test_a_run_never_reads_an_hour_a_killed_ingest_wrote_with_a_capture_after_its_as_of(storage, tmp_path):
    snaps, root, cut = str(tmp_path / "snaps"), str(tmp_path / "store"), str(tmp_path / "cut")
    t0 = utc("2022-05-25T00:00Z")
    for k in range(12):
        cap = t0 + k * H + 10 * M
        write_snapshot(storage, snaps, cap, [rec("A", bikes=k, due=cap.isoformat())])
    ing.ingest(storage, snaps, root, t0, t0 + 24 * H)
    as_of = t0 + 11 * H + 30 * M
    store_cut_at(snaps, cut, as_of)
    late = t0 + 11 * H + 50 * M
    write_snapshot(storage, snaps, late, [rec("A", bikes=99, due=late.isoformat())])
    # killed after writing 12:00 with the 11:50 capture, before 13:00 and the ledger
    ingest_dying_at(snaps, root, t0, t0 + 24 * H, "date=2022-05-25/part-13.parquet")
    assert hour_rows(storage, root, date(2022, 5, 25))[12][0]["bikes"] == 99
    refs = list_snapshots(storage, snaps, t0 - 5 * H, t0 + 36 * H, as_of=as_of)

    def settled():
        states = HourStates(hours_of_date(date(2022, 5, 25)), TABLE_RULE)
        return ing.read_stored_states(ing.PartitionCache(storage, root), states, StationRegistry(), refs,
                                      timedelta(hours=3))

    # the ledger still lists for 12:00 exactly the captures the run lists; its object is not that one
    assert not settled()[12] and settled()[:12].all()
    assert ing.read_states(storage, root, snaps, t0, t0 + 24 * H, as_of=as_of).to_pylist() == \
        ing.read_states(storage, str(tmp_path / "none"), cut, t0, t0 + 24 * H).to_pylist()
    # killed again at 13:00, having kept the 12:00 the first one wrote: still not committed
    ingest_dying_at(snaps, root, t0, t0 + 24 * H, "date=2022-05-25/part-13.parquet")
    assert not settled()[12] and settled()[:12].all()
    done = ing.ingest(storage, snaps, root, t0, t0 + 24 * H)
    assert "2022-05-25T12" not in done.hours_written and "2022-05-25T13" in done.hours_written


def test_one_capture_reaching_two_dates_is_parsed_once(storage, tmp_path):
    snaps, root = str(tmp_path / "snaps"), str(tmp_path / "store")
    cap = utc("2022-05-24T23:30Z")
    write_snapshot(storage, snaps, cap, [rec("A", due=(cap - 2 * H).isoformat())])
    result = ing.ingest(storage, snaps, root, utc("2022-05-24T00:00Z"), utc("2022-05-26T00:00Z"))
    assert result.written == ["2022-05-24", "2022-05-25"] and result.captures_parsed == 1
    hours = {r["hour_ts"] for d in DAYS for r in rows(storage, root, d)}
    assert min(hours) == utc("2022-05-24T22:00Z") and max(hours) == cap.replace(minute=0) + TABLE_RULE.lookback
    assert np.all([r["captured_at"] == cap for d in DAYS for r in rows(storage, root, d)])


# ---------------------------------------------------------------- windows read their history from the states
def test_windows_from_the_stored_states_are_the_windows_of_the_raw_captures_and_the_rule(real_store, storage, tmp_path):
    """The independent recomputation of test_ds_windows, on the state path: every hour but the
    last ones settled by the stored states, a few captures read raw."""
    states_root = str(tmp_path / "store")
    ing.ingest(storage, real_store, states_root, utc("2022-05-23T00:00Z"), utc("2022-05-26T00:00Z"))
    origins = origins_for_run_date(date(2022, 5, 25))[::5] + origins_for_range(utc("2022-05-26T21:00Z"),
                                                                                utc("2022-05-26T23:00Z"))
    expected, filled = naive_windows(real_store, origins)
    raw_rows, raw, _ = assembled(storage, real_store, origins, chunk_hours=3, out=str(tmp_path / "raw"))
    rows, result, _ = assembled(storage, real_store, origins, chunk_hours=3, out=str(tmp_path / "states"),
                                states_root=states_root)
    assert inputs_as_bytes(storage, result) == inputs_as_bytes(storage, raw)
    assert result.summary["by_origin"] == raw.summary["by_origin"]
    got = {rid: (row[:24], row[FEATURE_COLUMNS.index("capacity")], row[FEATURE_COLUMNS.index("lat")],
                 row[FEATURE_COLUMNS.index("lon")]) for rid, row in rows.items()}
    assert got == expected and len(got) > 9500
    # 2022-05-26 was not ingested: its hours (and the last of the 25th, whose captures reach into it) are raw
    assert 0 < result.summary["snapshots_read"] < raw.summary["snapshots_read"] / 2


def test_a_state_table_built_from_later_captures_does_not_leak_into_a_run_as_of_a_time(real_store, storage, tmp_path):
    """The states were ingested from the whole store, captures after as_of included (09:37Z holds
    records observed before 09:00): a run as of 09:05Z gets the inputs of the store cut at 09:05Z."""
    states_root = str(tmp_path / "store")
    ing.ingest(storage, real_store, states_root, utc("2022-05-24T00:00Z"), utc("2022-05-26T00:00Z"))
    as_of = utc("2022-05-25T09:05Z")
    cut = str(tmp_path / "cut")
    store_cut_at(real_store, cut, as_of)
    origins = [utc("2022-05-25T09:00Z") - k * H for k in range(5, -1, -1)]
    _, from_states, _ = assembled(storage, real_store, origins, out=str(tmp_path / "a"), as_of=as_of,
                                  states_root=states_root)
    _, from_cut, _ = assembled(storage, cut, origins, out=str(tmp_path / "b"), as_of=as_of)
    assert inputs_as_bytes(storage, from_states) == inputs_as_bytes(storage, from_cut)
    assert from_states.summary["by_origin"] == from_cut.summary["by_origin"]
    assert from_states.summary["snapshots_read"] < from_cut.summary["snapshots_read"]


def test_an_ingest_and_a_window_run_on_the_states_import_nothing_once_loaded(tmp_path):
    """pa.array() and to_numpy() import pandas on their first call: most of an ingest of one capture
    in a fresh process. Neither the ingest nor a window run reading the states imports anything."""
    code = (
        "import sys\n"
        "from datetime import date, datetime, timezone\n"
        "from velibcast.datasets import ingest\n"
        "from velibcast.datasets.assemble import assemble_transform_inputs\n"
        "from velibcast.datasets.windows import origins_for_run_date\n"
        "from velibcast.storage import Storage\n"
        "before = set(sys.modules)\n"
        f"snaps, root = {str(REPO / 'sample_data')!r}, {str(tmp_path / 'store')!r}\n"
        "w = ingest.ingest(Storage(), snaps, root, datetime(2022, 5, 24, tzinfo=timezone.utc),\n"
        "                  datetime(2022, 5, 26, tzinfo=timezone.utc)).written\n"
        f"r = assemble_transform_inputs(Storage(), snaps, origins_for_run_date(date(2022, 5, 25)), {str(tmp_path / 'in')!r},\n"
        f"    index_uri={str(tmp_path / 'index.parquet')!r}, states_root=root)\n"
        "print(len(w), r.summary['windows_emitted'], *sorted(set(sys.modules) - before))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path)
    assert out.stdout.split() == ["2", "33810"]


def test_history_reads_the_same_states_whatever_is_ingested_and_nothing_after_as_of(real_store, storage, tmp_path):
    start, end = utc("2022-05-24T00:00Z"), utc("2022-05-26T00:00Z")
    full, part, none = (str(tmp_path / n) for n in ("full", "part", "none"))
    ing.ingest(storage, real_store, full, start, end)
    ing.ingest(storage, real_store, part, start, utc("2022-05-25T00:00Z"))

    def history(root, snaps=real_store, as_of=None):
        return ing.read_states(storage, root, snaps, start, end, as_of).to_pylist()

    stored = [r for d in ing.dates_of(start, end) for r in rows(storage, full, d)]
    assert history(full) == history(part) == history(none) == stored and len(stored) > 48 * 1300
    as_of = utc("2022-05-25T09:05Z")
    cut = str(tmp_path / "cut")
    store_cut_at(real_store, cut, as_of)
    assert history(full, as_of=as_of) == history(none, snaps=cut)
    assert history(full, as_of=as_of) != stored


def test_a_scoring_grid_reads_the_settled_hours_from_the_states_and_gets_the_grid_of_the_raw_captures(
        real_store, storage, tmp_path):
    hours = origins_for_range(utc("2022-05-25T04:00Z"), utc("2022-05-26T04:00Z"))
    ingested, empty = str(tmp_path / "store"), str(tmp_path / "none")
    ing.ingest(storage, real_store, ingested, utc("2022-05-25T00:00Z"), utc("2022-05-26T00:00Z"))
    a, b = SkipReport(), SkipReport()
    stored = build_state_grid(storage, real_store, hours, report=a, states_root=ingested)
    raw = build_state_grid(storage, real_store, hours, report=b, states_root=empty)
    assert stored.station_codes == raw.station_codes and len(raw.station_codes) > 1300
    for name in ("present", "usable", "installed", "renting"):
        assert np.array_equal(getattr(stored, name), getattr(raw, name)), name
    for name in ("capacity", "lat", "lon"):  # a cell without a state holds no value to compare
        assert np.array_equal(getattr(stored, name)[raw.present], getattr(raw, name)[raw.present]), name
    assert np.array_equal(stored.bikes, raw.bikes, equal_nan=True)
    # only the captures that may hold a state of the 26th's hours, not ingested, are read
    assert 0 < stored.quality["snapshots"] < raw.quality["snapshots"]


def test_a_run_reading_the_states_counts_the_records_the_ingest_rejected(storage, tmp_path):
    snaps, root = str(tmp_path / "snaps"), str(tmp_path / "store")
    t0 = utc("2022-05-24T00:00Z")
    for k in range(30):
        cap = t0 + k * H + timedelta(minutes=10)
        bad = [rec("Z", bikes=-1, due=cap.isoformat())] if k in (3, 20) else []
        write_snapshot(storage, snaps, cap, [rec("A", bikes=k % 10, due=cap.isoformat()), *bad])
    ingested = ing.ingest(storage, snaps, root, t0, t0 + 24 * H)
    assert ingested.report.counts == {"negative_count": 2}
    origins = [t0 + 22 * H, t0 + 23 * H]
    _, raw, _ = assembled(storage, snaps, origins, out=str(tmp_path / "raw"))
    _, stored, _ = assembled(storage, snaps, origins, out=str(tmp_path / "states"), states_root=root)
    assert raw.report["counts"] == stored.report["counts"]
    assert stored.report["counts"]["negative_count"] == 2
    assert stored.summary["snapshots_read"] < raw.summary["snapshots_read"]
    history = SkipReport()
    ing.read_states(storage, root, snaps, t0, t0 + 24 * H, report=history)
    assert history.counts == {"negative_count": 2}
