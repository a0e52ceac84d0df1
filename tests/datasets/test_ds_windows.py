"""Windows: the rule (datasets.windows), checked by hand cases and by an independent recomputation on real data.

Every case reads what the one window path (datasets.assemble.assemble_transform_inputs, which the
nightly flow, the CLI and the bench run) wrote: the CSV shards and the record index.
"""

import bisect
import gc
import gzip
import io
import json
import subprocess
import sys
from collections import Counter
from datetime import date, datetime, timedelta

import numpy as np
import pyarrow.parquet as pq
import pytest

from tests.datasets.ds_helpers import rec, utc
from tests.helpers import REPO
from velibcast import constants as C
from velibcast.datasets.assemble import assemble_transform_inputs
from velibcast.datasets.report import SkipReport, ValidationPolicy
from velibcast.datasets.snapshots import snapshot_uri, write_snapshot
from velibcast.datasets.states import LATE_CAPTURE_HOURS
from velibcast.datasets.windows import (
    WindowSummary,
    batches_from_grid,
    build_state_grid,
    history_hours,
    iter_state_grids,
    latest_origin,
    origins_for_range,
    origins_for_run_date,
)
from velibcast.errors import DataError
from velibcast.timeutil import PARIS, iso_minute, parse_iso_minute, parse_key_time
from velibcast.transform_code.velib_features import (
    FEATURE_COLUMNS,
    HISTORY_LEN,
    STALE,
    STATE_AGE,
    TIME_FEATURES,
    UNKNOWN_STATION_INDEX,
    time_features,
)

H = timedelta(hours=1)


def test_origins_for_run_date_dst():
    assert len(origins_for_run_date(date(2022, 5, 25))) == 24
    spring = origins_for_run_date(date(2022, 3, 27))
    autumn = origins_for_run_date(date(2022, 10, 30))
    assert len(spring) == 23 and len(autumn) == 25
    assert spring[0] == utc("2022-03-26T23:00Z") and spring[-1] == utc("2022-03-27T21:00Z")
    assert autumn[0] == utc("2022-10-29T22:00Z") and autumn[-1] == utc("2022-10-30T22:00Z")
    assert origins_for_run_date(date(2022, 5, 25))[0] == utc("2022-05-24T22:00Z")


def test_origins_for_range_is_inclusive_exclusive():
    o = origins_for_range(utc("2022-05-23T00:30Z"), utc("2022-05-23T03:00Z"))
    assert o == [utc("2022-05-23T01:00Z"), utc("2022-05-23T02:00Z")]


def hourly_store(storage, root, t0, n_hours, make):
    """A snapshot captured 10 min after each hour; make(i, capture) -> list of records."""
    for i in range(n_hours):
        cap = t0 + i * H + timedelta(minutes=10)
        write_snapshot(storage, root, cap, make(i, cap), layout="flat")


def due(ts: datetime) -> str:
    return ts.isoformat()


def _value(text: str):
    return int(text) if text.lstrip("-").isdigit() else float(text)


def assembled(storage, root, origins, index=None, staleness=3, chunk_hours=24, out=None, as_of=None, states_root=None):
    """Run the one window path; return ({record_id: feature row read back from the shards}, result, index rows)."""
    out = out or root + "/assembled"
    result = assemble_transform_inputs(storage, root, origins, out + "/in", station_index=index or {},
                                       max_staleness=timedelta(hours=staleness), policy=ValidationPolicy(),
                                       index_uri=out + "/index.parquet", chunk_hours=chunk_hours, as_of=as_of,
                                       states_root=states_root)
    rows = {}
    for uri in result.shards:
        for line in storage.read_text(uri).splitlines():
            rid, *values = line.split(",")
            assert rid not in rows
            rows[rid] = [_value(v) for v in values]
    index_rows = pq.read_table(io.BytesIO(storage.read_bytes(out + "/index.parquet"))).to_pylist()
    assert [r["record_id"] for r in index_rows] == list(rows) or sorted(r["record_id"] for r in index_rows) == sorted(rows)
    assert result.summary["windows_emitted"] == len(rows) == len(index_rows)
    return rows, result, index_rows


def run(storage, root, origins, index=None, staleness=3):
    rows, result, index_rows = assembled(storage, root, origins, index, staleness)
    return rows, result.report, index_rows


T0 = utc("2022-05-23T00:00Z")


def test_window_values_oldest_first_and_features(any_root, storage):
    hourly_store(storage, any_root, T0, 30,
                 lambda i, cap: [rec("A", bikes=i, docks=0, capacity=40, due=due(T0 + i * H + timedelta(minutes=5)))])
    t = T0 + 28 * H
    ws, report, index_rows = run(storage, any_root, [t], {"A": 7})
    assert list(ws) == ["A@2022-05-24T04:00Z"]
    row = ws["A@2022-05-24T04:00Z"]
    # state at h is the record observed at h-55min (obs h+5min is after h): 55 min old, not stale
    assert row[:24] == list(range(4, 28))
    assert row[24:] == [6, 1, 0, 0, 40, 7, 48.85, 2.35, 55, 0, 0, 0]
    assert len(row) == len(FEATURE_COLUMNS)
    assert report["counts"] == {}
    assert index_rows == [{"record_id": "A@2022-05-24T04:00Z", "station_code": "A", "origin_ts": t,
                           "capacity": 40, "unknown_station": False}]


def test_time_features_are_the_contracts_in_paris_time(tmp_path, storage):
    """The calendar columns are velib_features.time_features of the origin in Europe/Paris time, in
    both formats. Ascension 2022 is Thursday 05-26 (Paris UTC+2); Friday 05-27 is a working day."""
    root = str(tmp_path)
    hourly_store(storage, root, T0, 94, lambda i, cap: [rec("A", due=due(cap))])
    origins = [utc("2022-05-25T21:00Z"), utc("2022-05-25T22:00Z"), utc("2022-05-26T21:00Z")]
    rows, _, _ = assembled(storage, root, origins)
    got = {rid: tuple(row[FEATURE_COLUMNS.index(f)] for f in TIME_FEATURES) for rid, row in rows.items()}
    assert got == {"A@2022-05-25T21:00Z": (23, 2, 0, 1, 0, 0), "A@2022-05-25T22:00Z": (0, 3, 1, 0, 0, 0),
                   "A@2022-05-26T21:00Z": (23, 3, 1, 0, 0, 0)}
    assert all(got[f"A@{iso_minute(t)}"] == time_features(t.astimezone(PARIS)) for t in origins)
    result = assemble_transform_inputs(storage, root, origins[:1], root + "/jsonl", fmt="jsonl")
    [line] = storage.read_text(result.shards[0]).splitlines()
    features = json.loads(line)["features"]
    assert [features[f] for f in TIME_FEATURES] == [23, 2, 0, 1, 0, 0]


def test_staleness_boundary_and_skip_reasons(tmp_path, storage):
    root = str(tmp_path)
    t = T0 + 30 * H

    def make(i, cap):
        h = T0 + i * H
        out = [rec("ok", due=due(h)),
               rec("noinst", due=due(h), installed="NON"),
               rec("norent", due=due(h), renting="NON")]
        # "edge" stops updating 3 h before t: at t its state is exactly 3 h old -> usable
        out.append(rec("edge", due=due(min(h, t - 3 * H))))
        # "stale" stops 3 h 1 s before t -> unusable at t
        out.append(rec("stale", bikes=min(i, 26), capacity=40, due=due(min(h, t - 3 * H - timedelta(seconds=1)))))
        if i >= 10:
            out.append(rec("young", due=due(h)))  # no state for the first hours of the window: filled
        if i == 30:
            out.append(rec("late", due=due(cap)))  # first observed after t: no state at any hour, not counted
        return out

    hourly_store(storage, root, T0, 31, make)
    ws, report, index_rows = run(storage, root, [t], {"ok": 1, "gone": 2})
    # "stale" is open by its last record: it gets a window, flagged stale (the model serves its profile)
    assert sorted(r.split("@")[0] for r in ws) == ["edge", "ok", "stale", "young"]
    # "late" has a state at no hour of the grid, so it is not on it (missing_at_origin counts stations with
    # a state at another hour of the grid: test_windows_and_counts_follow_the_rule_station_by_station)
    assert report["counts"] == {"not_installed": 1, "not_renting": 1, "missing_station": 1, "unknown_station": 3,
                                "filled_history": 2, "filled_hours": 4}
    assert "missing_at_origin" not in report["examples"]
    assert "e.g. gone" in report["examples"]["missing_station"][0]
    assert ws["edge@2022-05-24T06:00Z"][FEATURE_COLUMNS.index("station_index")] == UNKNOWN_STATION_INDEX
    assert ws["ok@2022-05-24T06:00Z"][FEATURE_COLUMNS.index("station_index")] == 1
    age, stale = FEATURE_COLUMNS.index(STATE_AGE), FEATURE_COLUMNS.index(STALE)
    # "edge" is exactly 3 h old (usable), "stale" 3 h 1 s (180 whole minutes too, but past max_staleness)
    assert {c: ws[f"{c}@2022-05-24T06:00Z"][age:stale + 1] for c in ("ok", "edge", "stale")} == {
        "ok": [0, 0], "edge": [180, 0], "stale": [180, 1]}
    # its history: its states while usable, then its last state carried to t
    assert ws["stale@2022-05-24T06:00Z"][:24] == [*range(7, 27), 26, 26, 26, 26]
    assert {r["station_code"]: r["unknown_station"] for r in index_rows} == {
        "edge": True, "ok": False, "stale": True, "young": True}


def test_quiet_hours_are_carried_forward_and_the_first_backward(tmp_path, storage):
    """A station absent from the captures of hours 10..15 keeps its hour-9 record while it is usable
    (to hour 12: 3 h, inclusive), then that state is carried to hours 13..15; a station first seen at
    hour 12 takes that first state for the hours of its window before it."""
    root = str(tmp_path)

    def make(i, cap):
        h = T0 + i * H
        out = [rec("ok", bikes=i % 7, due=due(h))]
        if not 10 <= i <= 15:
            out.append(rec("quiet", bikes=i, due=due(h)))
        if i >= 12:
            out.append(rec("young", bikes=i, due=due(h)))
        return out

    hourly_store(storage, root, T0, 31, make)
    t = T0 + 30 * H  # window hours 7 .. 30
    rows, result, _ = assembled(storage, root, [t, t - H])
    assert rows[f"quiet@{iso_minute(t)}"][:24] == [7, 8, 9, 9, 9, 9, 9, 9, 9, *range(16, 31)]
    assert rows[f"young@{iso_minute(t)}"][:24] == [12] * 6 + list(range(12, 31))[1:]
    assert rows[f"ok@{iso_minute(t)}"][:24] == [i % 7 for i in range(7, 31)]
    counts = result.report["counts"]
    # t: quiet 3 filled hours, young 5; t - 1 h (hours 6 .. 29): quiet 3, young 6
    assert (counts["filled_history"], counts["filled_hours"]) == (4, 17)
    assert not set(counts) & {"missing_at_origin", "stale_at_origin", "not_installed", "not_renting"}
    summary = result.summary
    assert summary["by_origin"] == {
        iso_minute(t - H): {"open_stations": 3, "windows": 3, "windows_stale": 0, "windows_filled": 2, "hours_filled": 9},
        iso_minute(t): {"open_stations": 3, "windows": 3, "windows_stale": 0, "windows_filled": 2, "hours_filled": 8},
    }
    assert (summary["windows_filled"], summary["hours_filled"], summary["open_coverage"]) == (4, 17, 1.0)


def test_no_duedate_uses_capture_and_ties_go_to_latest_capture(tmp_path, storage):
    root = str(tmp_path)
    hourly_store(storage, root, T0, 26, lambda i, cap: [rec("A", bikes=i, due=None)])
    # a later capture re-publishing an older observation time with another value: the latest capture wins
    write_snapshot(storage, root, T0 + 25 * H + timedelta(minutes=40), [rec("A", bikes=99, due=due(T0 + 25 * H + timedelta(minutes=10)))], "flat")
    t = T0 + 25 * H + H  # 02:00Z on day 2
    ws, report, _ = run(storage, root, [t])
    [row] = ws.values()
    assert row[23] == 99 and row[22] == 24


def test_late_capture_of_an_earlier_observation_counts(tmp_path, storage):
    """A record captured after h with obs <= h is the state at h (upstream refresh lag)."""
    root = str(tmp_path)
    hourly_store(storage, root, T0, 25, lambda i, cap: [rec("A", bikes=1, due=due(T0 + i * H))])
    write_snapshot(storage, root, T0 + 24 * H + timedelta(minutes=50),
                   [rec("A", bikes=7, due=due(T0 + 24 * H - timedelta(minutes=1)))], "flat")
    ws, _, _ = run(storage, root, [T0 + 24 * H - H])
    # obs 23:59 on day 1 is after origin-hour 23:00? no: origin is 2022-05-23T23:00Z, obs 2022-05-23T23:59Z > t
    assert [row[23] for row in ws.values()] == [1]
    ws, _, _ = assembled(storage, root, [T0 + 24 * H], out=root + "/second")
    assert [row[23] for row in ws.values()] == [1]  # obs at 00:00 exactly (from the regular capture) is later than 23:59


# ---------------------------------------------------------------- independent recomputation on real data
def naive_windows(root: str, origins, staleness_h=3, as_of=None):
    """Straight from the rule, with its own reader: every snapshot in the store (captured at or
    before as_of), all records. Returns {record_id: (history, capacity, lat, lon)} and
    {origin: [windows with filled hours, hours filled]}."""
    import glob
    import os

    by_station: dict[str, list] = {}
    for path in glob.glob(os.path.join(root, "velib", "snapshots", "**", "*.jsonl.gz"), recursive=True):
        name = os.path.basename(path)[: -len(".jsonl.gz")]
        cap = parse_key_time(name)
        if as_of is not None and cap > as_of:
            continue
        for line in gzip.decompress(open(path, "rb").read()).splitlines():
            d = json.loads(line)
            obs = datetime.fromisoformat(d["duedate"]) if d.get("duedate") else cap
            by_station.setdefault(d["stationcode"], []).append((obs, cap, d))
    out, filled = {}, {t: [0, 0] for t in origins}
    lookback, lag = timedelta(hours=staleness_h + C.LISTING_MARGIN_HOURS), timedelta(hours=LATE_CAPTURE_HOURS)
    for code, recs in by_station.items():
        recs.sort(key=lambda x: (x[0], x[1]))

        obs_times = [r[0] for r in recs]

        def state(h, obs_times=obs_times, recs=recs):
            k = bisect.bisect_right(obs_times, h) - 1  # last of the latest observation time: latest capture
            if k < 0 or h - recs[k][0] > timedelta(hours=staleness_h):
                return None
            return recs[k][2]

        def recorded(h, recs=recs):
            """However old (a stale station's last known state): the latest record observed at or before h
            in the captures that may hold a state of h (datasets/states.py's StateRule)."""
            seen = [r for r in recs if r[0] <= h and h - lookback <= r[1] <= h + lag]
            return max(seen, key=lambda r: (r[0], r[1]))[2] if seen else None

        for t in origins:
            last = state(t)
            stale = last is None and recorded(t) is not None
            if stale:
                last = recorded(t)
            if last is None or last["is_installed"] != "OUI" or last["is_renting"] != "OUI":
                continue
            usable = [state(t - k * H) for k in range(23, -1, -1)]
            states = [recorded(t - k * H) for k in range(23, -1, -1)] if stale else usable
            history = []
            for k, s in enumerate(states):
                if s is None:
                    earlier = [e for e in states[:k] if e is not None]
                    s = earlier[-1] if earlier else next(e for e in states[k:] if e is not None)
                history.append(s["numbikesavailable"])
            gaps = sum(s is None for s in usable)
            filled[t][0] += gaps > 0
            filled[t][1] += gaps
            out[f"{code}@{iso_minute(t)}"] = (history, last["capacity"],
                                              last["coordonnees_geo"]["lat"], last["coordonnees_geo"]["lon"])
    return out, filled


def test_windows_match_independent_recomputation_on_real_data(real_store, storage, tmp_path):
    origins = origins_for_run_date(date(2022, 5, 25))[::5] + origins_for_range(utc("2022-05-26T21:00Z"), utc("2022-05-26T23:00Z"))
    expected, filled = naive_windows(real_store, origins)
    rows, result, _ = assembled(storage, real_store, origins, chunk_hours=3, out=str(tmp_path / "a"))
    got = {rid: (row[:24], row[FEATURE_COLUMNS.index("capacity")], row[FEATURE_COLUMNS.index("lat")],
                 row[FEATURE_COLUMNS.index("lon")]) for rid, row in rows.items()}
    assert len(expected) > 9500
    assert got.keys() == expected.keys()
    assert got == expected
    by_origin = result.summary["by_origin"]
    assert {t: [by_origin[iso_minute(t)][k] for k in ("windows_filled", "hours_filled")] for t in origins} == filled
    assert sum(w for w, _ in filled.values()) > 200  # the real night has quiet stations to fill
    for rid, row in rows.items():  # the time features are the origin's, in Paris time
        t = parse_iso_minute(rid.split("@")[1])
        assert tuple(row[FEATURE_COLUMNS.index(f)] for f in TIME_FEATURES) == time_features(t.astimezone(PARIS))


def test_streaming_chunks_give_the_same_windows(real_store, storage, tmp_path):
    origins = origins_for_range(utc("2022-05-24T20:00Z"), utc("2022-05-25T04:00Z"))
    a, ra, _ = assembled(storage, real_store, origins, chunk_hours=1, out=str(tmp_path / "a"))
    b, rb, _ = assembled(storage, real_store, origins, chunk_hours=100, out=str(tmp_path / "b"))
    assert a == b and len(a) > 5000
    assert ra.report["counts"] == rb.report["counts"]
    assert ra.summary["by_origin"] == rb.summary["by_origin"]


def test_grid_masks_are_consistent(real_store, storage):
    hours = history_hours(origins_for_run_date(date(2022, 5, 25)))
    grid = build_state_grid(storage, real_store, hours)
    assert grid.bikes.shape == (len(grid.station_codes), len(hours))
    assert np.array_equal(np.isnan(grid.bikes), ~grid.usable)
    assert not (grid.usable & ~grid.present).any()


def test_a_future_duedate_no_longer_overrides_later_real_states(tmp_path, storage):
    """A record dated 8 h after its capture used to be the state of every hour after
    that date, over the real records observed in between. Now it is rejected and counted."""
    root = str(tmp_path)

    def make(i, cap):
        if i == 20:
            return [rec("A", bikes=99, docks=0, capacity=120, due=due(cap + 8 * H))]
        return [rec("A", bikes=i, docks=0, capacity=120, due=due(cap - timedelta(minutes=5)))]

    hourly_store(storage, root, T0, 30, make)
    ws, report, _ = run(storage, root, [T0 + 29 * H], {"A": 1})
    [row] = ws.values()
    assert row[23] == 28   # the real state observed at 28:05, not the bogus 99 "observed" at 28:10
    assert 99 not in row[:24]
    assert report["counts"] == {"future_duedate": 1}
    assert "is 28800 s after the capture 2022-05-23T20:10:00Z" in report["examples"]["future_duedate"][0]


def test_the_window_path_imports_nothing_once_loaded(tmp_path):
    """pa.array() imports pandas on its first call: 0.25 s of a fresh `velibcast windows` process,
    half the real nightly's assembly (bench/windows.py); strptime and numpy.char cost 7 ms more.
    Nothing is imported while the windows are assembled."""
    code = (
        "import sys\n"
        "from datetime import date\n"
        "from velibcast.datasets.assemble import assemble_transform_inputs\n"
        "from velibcast.datasets.quality import QualityTracker\n"
        "from velibcast.datasets.windows import origins_for_run_date\n"
        "from velibcast.storage import Storage\n"
        "before = set(sys.modules)\n"
        f"r = assemble_transform_inputs(Storage(), {str(REPO / 'sample_data')!r}, origins_for_run_date(date(2022, 5, 25)),\n"
        f"    {str(tmp_path / 'in')!r}, index_uri={str(tmp_path / 'index.parquet')!r}, observers=[QualityTracker()])\n"
        "print(r.summary['windows_emitted'], *sorted(set(sys.modules) - before))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path)
    assert out.stdout.split() == ["33810"]


def test_the_record_index_is_written_in_row_groups_of_many_origins(any_root, storage, monkeypatch):
    hourly_store(storage, any_root, T0, 30, lambda i, cap: [rec(c, due=due(cap)) for c in "ABC"])
    origins = [T0 + (24 + k) * H for k in range(6)]
    _, _, rows = assembled(storage, any_root, origins)
    assert len(rows) == 18
    meta = pq.ParquetFile(io.BytesIO(storage.read_bytes(any_root + "/assembled/index.parquet"))).metadata
    assert meta.num_row_groups == 1  # one group for the whole run, not one per origin
    monkeypatch.setattr(C, "INDEX_ROW_GROUP_ROWS", 5)
    _, _, again = assembled(storage, any_root, origins, out=any_root + "/small")
    meta = pq.ParquetFile(io.BytesIO(storage.read_bytes(any_root + "/small/index.parquet"))).metadata
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [6, 6, 6] and again == rows


def test_a_station_that_moves_between_chunks_gets_its_new_coordinates(any_root, storage):
    # CoordText reuses the last grid's lat/lon text only while no station moved; the record of capture
    # 28 (h + 10 min) is the state from hour 29 on
    hourly_store(storage, any_root, T0, 34, lambda i, cap: [
        rec("A", due=due(cap), lat=48.85 if i < 28 else 48.9), rec("B", due=due(cap))])
    origins = [T0 + (24 + k) * H for k in range(8)]
    for chunk_hours in (1, 3, 24):
        rows, _, _ = assembled(storage, any_root, origins, chunk_hours=chunk_hours, out=f"{any_root}/c{chunk_hours}")
        lats = {rid: row[FEATURE_COLUMNS.index("lat")] for rid, row in rows.items() if rid.startswith("A@")}
        assert lats == {f"A@{iso_minute(t)}": 48.85 if t <= T0 + 28 * H else 48.9 for t in origins}, chunk_hours


def test_chunks_are_sized_by_the_stations_of_the_first_origins_hours(real_store, storage):
    """The real nightly fits one grid; a cap on grid cells sizes every chunk, the first included."""
    origins = origins_for_run_date(date(2022, 5, 25))
    sizes = [len(chunk) for chunk, _ in iter_state_grids(storage, real_store, origins, SkipReport())]
    assert sizes == [24]
    n_st = 1415  # the stations of 2022-05-23..25
    capped = [(len(chunk), grid.bikes.size) for chunk, grid in iter_state_grids(
        storage, real_store, origins, SkipReport(), grid_cells_max=n_st * (HISTORY_LEN - 1 + 5))]
    assert [n for n, _ in capped] == [5, 5, 5, 5, 4]
    assert all(cells <= n_st * (HISTORY_LEN - 1 + 5) for _, cells in capped)


def test_a_failed_assembly_leaves_no_index_writer_behind(tmp_path, storage, monkeypatch):
    """A run that fails mid-way closes its record index writer while the index's temporary file
    is open: left to the garbage collector, it wrote its footer to a closed file ("Exception
    ignored in ParquetWriter.__del__", seen in another test's warnings)."""
    root = str(tmp_path)
    hourly_store(storage, root, T0, 30, lambda i, cap: [rec(c, due=due(cap)) for c in "AB"])
    bad = T0 + 27 * H + timedelta(minutes=10)
    storage.write_bytes(snapshot_uri(root, bad, layout="flat"), b"not gzip")
    ignored = []
    monkeypatch.setattr(sys, "unraisablehook", ignored.append)
    with pytest.raises(DataError, match="corrupt_gzip|cannot gunzip"):
        assemble_transform_inputs(storage, root, [T0 + (24 + k) * H for k in range(6)], root + "/in",
                                  index_uri=root + "/index.parquet", policy=ValidationPolicy(on_bad_object="fail"))
    gc.collect()
    assert [str(u.exc_value) for u in ignored] == []
    assert not storage.exists(root + "/index.parquet")


def test_windows_and_counts_follow_the_rule_station_by_station(real_store, storage):
    """The grid's windows recomputed cell by cell in plain Python from the rule: the same reasons,
    the same histories, the same filled counts, and every station-origin emitted or counted once."""
    origins = origins_for_run_date(date(2022, 5, 25))
    [(chunk, grid)] = list(iter_state_grids(storage, real_store, origins, SkipReport()))
    report, summary = SkipReport(), WindowSummary()
    got = {(b.origin_ts, code): hist for b in batches_from_grid(grid, chunk, {"16107": 1}, report, summary=summary)
           for code, hist in zip(b.station_codes.tolist(), b.history.tolist())}
    expected: Counter = Counter()
    want = {}
    for t in chunk:
        j = grid.hour_pos(t)
        for i, code in enumerate(grid.station_codes):
            is_open = grid.installed[i, j] and grid.renting[i, j]
            if not grid.present[i, j]:
                expected["missing_at_origin"] += 1
            elif not grid.usable[i, j] and not is_open:
                expected["stale_at_origin"] += 1
            elif not grid.installed[i, j]:
                expected["not_installed"] += 1
            elif not grid.renting[i, j]:
                expected["not_renting"] += 1
            else:
                stale = not grid.usable[i, j]
                expected["windows_stale"] += stale
                hours = range(j - HISTORY_LEN + 1, j + 1)
                known = grid.present if stale else grid.usable  # a stale station: its records however old
                values = grid.recorded if stale else grid.bikes
                kept = [h for h in hours if known[i, h]]
                history = []
                for h in hours:
                    source = h if known[i, h] else max((u for u in kept if u < h), default=kept[0])
                    history.append(int(values[i, source]))
                want[(t, code)] = history
                usable = [h for h in hours if grid.usable[i, h]]
                gaps = len(hours) - len(usable)
                expected["filled_history"] += gaps > 0
                expected["filled_hours"] += gaps
    counts = dict(report.to_dict()["counts"], windows_stale=summary.to_dict()["windows_stale"])
    assert min(expected["missing_at_origin"], expected["stale_at_origin"], expected["not_renting"],
               expected["filled_history"], expected["windows_stale"]) > 0  # not_installed: none that night
    assert {r: counts.get(r, 0) for r in expected} == dict(expected)
    assert got == want
    assert len(got) + sum(expected[r] for r in ("missing_at_origin", "stale_at_origin", "not_installed",
                                                "not_renting")) == len(grid.station_codes) * len(chunk)
    assert summary.windows_emitted == len(got)
    assert summary.to_dict()["open_coverage"] == 1.0, "every open station has a window"
    assert report.to_dict()["examples"]["stale_at_origin"][0].endswith(
        "the state at t is older than max_staleness and does not say installed and renting; e.g. stations "
        + report.to_dict()["examples"]["stale_at_origin"][0].rsplit("e.g. stations ", 1)[1])


# ---------------------------------------------------------------- as of a time: no look-ahead
def store_cut_at(src_root: str, dest_root: str, as_of: datetime) -> int:
    """A copy of a local store holding only the captures taken at or before as_of; how many."""
    import glob
    import os
    import shutil

    kept = 0
    for path in glob.glob(os.path.join(src_root, "velib", "snapshots", "**", "*.jsonl.gz"), recursive=True):
        if parse_key_time(os.path.basename(path)[: -len(".jsonl.gz")]) <= as_of:
            dest = os.path.join(dest_root, os.path.relpath(path, src_root))
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            shutil.copy(path, dest)
            kept += 1
    return kept


def inputs_as_bytes(storage, result) -> dict:
    """What a transform job and the join read: each shard's bytes by name, and the record index's."""
    out = {uri.rsplit("/", 1)[-1]: storage.read_bytes(uri) for uri in result.shards}
    out["index.parquet"] = storage.read_bytes(result.index_uri)
    return out


def test_a_store_with_later_captures_gives_the_inputs_of_the_store_cut_at_as_of(real_store, storage, tmp_path):
    """As of 09:05Z the origin is 09:00Z; the capture of 09:37Z holds records observed before 09:00
    (published late), which a run reading the whole store would put in the windows."""
    as_of = utc("2022-05-25T09:05Z")
    cut = str(tmp_path / "cut")
    assert store_cut_at(real_store, cut, as_of) < 85
    origin = latest_origin(storage, real_store, as_of)
    assert origin == utc("2022-05-25T09:00Z") == latest_origin(storage, cut, as_of)
    origins = [origin - k * H for k in range(5, -1, -1)]
    _, full, _ = assembled(storage, real_store, origins, out=str(tmp_path / "full"), as_of=as_of)
    _, cut_result, _ = assembled(storage, cut, origins, out=str(tmp_path / "from-cut"), as_of=as_of)
    assert inputs_as_bytes(storage, full) == inputs_as_bytes(storage, cut_result)
    assert full.report["counts"] == cut_result.report["counts"]
    assert full.summary == cut_result.summary
    assert full.summary["windows_emitted"] > 8000
    # the control: without the cut, the later captures change the windows
    _, leaky, _ = assembled(storage, real_store, origins, out=str(tmp_path / "leaky"))
    assert inputs_as_bytes(storage, leaky) != inputs_as_bytes(storage, full)


def test_a_late_published_observation_captured_after_as_of_is_not_read(tmp_path, storage):
    root = str(tmp_path)
    hourly_store(storage, root, T0, 30, lambda i, cap: [rec("A", bikes=i, due=due(cap))])
    t = T0 + 29 * H
    # observed 5 min before t, captured 40 min after it
    write_snapshot(storage, root, t + 40 * timedelta(minutes=1), [rec("A", bikes=99, due=due(t - 5 * timedelta(minutes=1)))],
                   "flat")
    leaky, _, _ = assembled(storage, root, [t], out=root + "/leaky")
    assert leaky[f"A@{iso_minute(t)}"][23] == 99
    as_of = t + 30 * timedelta(minutes=1)
    rows, result, _ = assembled(storage, root, [t], out=root + "/as-of", as_of=as_of)
    assert rows[f"A@{iso_minute(t)}"][23] == 28  # the capture of t - 50 min
    assert result.as_of == "2022-05-24T05:30:00Z"
    with pytest.raises(ValueError, match="after the run's as-of time"):
        assembled(storage, root, [t + H], out=root + "/late", as_of=as_of)


def test_latest_origin_is_the_latest_whole_hour_with_a_capture_within_staleness(tmp_path, storage):
    root = str(tmp_path)
    for c in ["2022-05-24T21:37:00Z", "2022-05-24T23:37:15Z", "2022-05-25T02:32:23Z", "2022-05-25T06:00:00Z"]:
        write_snapshot(storage, root, utc(c), [rec(due=None)], "flat")
    assert latest_origin(storage, root, utc("2022-05-25T06:00Z")) == utc("2022-05-25T06:00Z")  # exactly on the hour
    assert latest_origin(storage, root, utc("2022-05-25T05:59:59Z")) == utc("2022-05-25T05:00Z")  # 02:32 within 3 h
    # 02:30 Europe/Paris in the scraper's nightly gap: the hour after the last evening capture
    assert latest_origin(storage, root, utc("2022-05-25T00:30Z")) == utc("2022-05-25T00:00Z")
    # before the 02:32 capture, 23:37:15 is within 3 h of 02:00, within 2 h of 01:00 only
    assert latest_origin(storage, root, utc("2022-05-25T02:31Z")) == utc("2022-05-25T02:00Z")
    assert latest_origin(storage, root, utc("2022-05-25T02:31Z"), timedelta(hours=2)) == utc("2022-05-25T01:00Z")
    # a capture exactly max_staleness before the hour is not within it: (h - max_staleness, h]
    assert latest_origin(storage, root, utc("2022-05-25T09:30Z")) == utc("2022-05-25T08:00Z")
    assert latest_origin(storage, root, utc("2022-05-24T21:36:59Z")) is None  # nothing captured yet
    assert latest_origin(storage, root, utc("2022-05-27T12:00Z")) is None  # nothing within a day and staleness
