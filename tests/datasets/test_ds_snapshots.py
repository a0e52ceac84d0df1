"""Snapshot store: keys, listing by capture time in both layouts, reading and validation."""

import gzip
from datetime import timedelta

import pytest

from tests.datasets.ds_helpers import rec, utc
from tests.helpers import read_snapshot
from velibcast import storage as st
from velibcast.datasets.report import SkipReport, ValidationPolicy
from velibcast.datasets.snapshots import (
    SnapshotRef,
    capture_ts_from_key,
    encode_snapshot,
    list_snapshots,
    snapshot_uri,
    write_snapshot,
)
from velibcast.errors import DataError


def test_keys_in_both_layouts():
    ts = utc("2022-05-23T02:26:46Z")
    assert snapshot_uri("s3://b/r", ts, "flat") == "s3://b/r/velib/snapshots/2022-05-23T02-26-46Z.jsonl.gz"
    assert snapshot_uri("s3://b/r", ts) == "s3://b/r/velib/snapshots/date=2022-05-23/2022-05-23T02-26-46Z.jsonl.gz"
    assert capture_ts_from_key(snapshot_uri("/x", ts)) == ts
    assert capture_ts_from_key("/x/velib/snapshots/notes.txt") is None
    for name in ["2022-05-23T02-26-46Z.jsonl", "2022-05-23T02-26-46Z.jsonl.gz.tmp", "2022-05-23T2-26-46Z.jsonl.gz",
                 "٢٠٢٢-05-23T02-26-46Z.jsonl.gz", "2022-05-23T02-26-46z.jsonl.gz", "x2022-05-23T02-26-46Z.jsonl.gz",
                 "2022-05-23T25-26-46Z.jsonl.gz", ".jsonl.gz"]:
        assert capture_ts_from_key(f"/x/velib/snapshots/{name}") is None, name


def test_list_by_capture_time_reads_both_layouts_and_only_needed_days(any_root, storage):
    caps = ["2022-05-22T23:37:40Z", "2022-05-23T02:26:46Z", "2022-05-23T23:38:08Z", "2022-05-24T02:34:53Z",
            "2022-05-26T10:00:00Z"]
    for i, c in enumerate(caps):
        write_snapshot(storage, any_root, utc(c), [rec()], layout="flat" if i % 2 else "partitioned")
    # the same capture in both layouts is read once, and counted
    write_snapshot(storage, any_root, utc(caps[1]), [rec()], layout="partitioned")
    report = SkipReport()
    refs = list_snapshots(storage, any_root, utc("2022-05-23T00:00Z"), utc("2022-05-24T02:34:53Z"), report)
    assert [r.capture_ts for r in refs] == [utc(c) for c in caps[1:4]]
    assert report.counts == {"duplicate_snapshot": 1}
    assert "same capture as" in report.examples["duplicate_snapshot"][0]


def test_nothing_captured_after_as_of_is_listed(any_root, storage):
    caps = ["2022-05-23T23:38:08Z", "2022-05-24T00:00:00Z", "2022-05-24T00:00:01Z", "2022-05-24T02:34:53Z"]
    for i, c in enumerate(caps):
        write_snapshot(storage, any_root, utc(c), [rec()], layout="flat" if i % 2 else "partitioned")
    start, end = utc("2022-05-23T00:00Z"), utc("2022-05-25T00:00Z")
    listed = [r.capture_ts for r in list_snapshots(storage, any_root, start, end, as_of=utc("2022-05-24T00:00Z"))]
    assert listed == [utc(c) for c in caps[:2]]  # a capture exactly at as_of was taken by then
    assert list_snapshots(storage, any_root, start, end, as_of=utc("2022-05-23T12:00Z")) == []
    assert len(list_snapshots(storage, any_root, start, end, as_of=utc("2022-05-26T00:00Z"))) == 4  # end still holds


def test_keys_are_matched_whole_and_misfiled_captures_counted(any_root, storage):
    """`x<ts>`, `date=D/sub/<ts>`, an impossible time and a capture under another date's
    folder were read as snapshots, raised a bare ValueError, or were ignored and counted nowhere."""
    good = write_snapshot(storage, any_root, utc("2022-05-26T04:00:00Z"), [rec()])
    base = st.join(any_root, "velib", "snapshots")
    body = encode_snapshot([rec()], utc("2022-05-26T05:00:00Z"))
    bad = {
        "bad_key": ["date=2022-05-26/x2022-05-26T05-00-00Z.jsonl.gz", "date=2022-05-26/sub/2022-05-26T05-00-00Z.jsonl.gz",
                    "2022-05-26T25-61-00Z.jsonl.gz", "date=2022-05-26/2022-05-26T05-00-00Z.jsonl.gz.bak",
                    "2022-05-26T06-00-00Z.jsonl.gz/part"],
        # the Europe/Paris date instead of the UTC date: one day later for captures after 22:00Z
        "misfiled_key": ["date=2022-05-27/2022-05-26T23-00-00Z.jsonl.gz"],
    }
    for keys in bad.values():
        for k in keys:
            storage.write_bytes(st.join(base, k), body)
    # a misfiled capture outside the range is another run's business
    storage.write_bytes(st.join(base, "date=2022-05-25/2022-05-24T23-00-00Z.jsonl.gz"), body)
    report = SkipReport()
    refs = list_snapshots(storage, any_root, utc("2022-05-26T00:00Z"), utc("2022-05-26T23:59Z"), report)
    assert [r.uri for r in refs] == [good]
    assert report.counts == {"bad_key": 5, "misfiled_key": 1}
    assert any("2022-05-26T25-61-00Z.jsonl.gz: not a snapshot key" in e for e in report.examples["bad_key"])
    assert report.examples["misfiled_key"][0].endswith(
        "date=2022-05-27/2022-05-26T23-00-00Z.jsonl.gz: capture 2022-05-26T23:00:00Z filed under date=2022-05-27; "
        "move it to date=2022-05-26/")
    with pytest.raises(DataError) as e:
        list_snapshots(storage, any_root, utc("2022-05-26T00:00Z"), utc("2022-05-26T23:59Z"), SkipReport(),
                       ValidationPolicy(on_bad_object="fail"))
    assert "bad_key" in str(e.value) and "velib/snapshots/" in str(e.value)


def test_listing_paginates_past_one_page(tmp_path, storage, monkeypatch):
    from velibcast import constants as C

    monkeypatch.setattr(C, "S3_LIST_PAGE_SIZE", 7)
    root = str(tmp_path)
    t0 = utc("2022-05-23T00:00Z")
    for i in range(30):
        write_snapshot(storage, root, t0 + timedelta(minutes=10 * i), [rec()], layout="flat")
    assert len(list_snapshots(storage, root, t0, t0 + timedelta(days=1))) == 30


def test_read_v21_records_and_obs_time(any_root, storage):
    ts = utc("2022-05-23T10:30:00Z")
    uri = write_snapshot(storage, any_root, ts, [rec("1", due="2022-05-23T12:15:00+02:00"), rec("2", due=None)])
    report = SkipReport()
    out = read_snapshot(storage, SnapshotRef(uri, ts), ValidationPolicy(), report)
    assert [r.station_code for r in out] == ["1", "2"]
    assert out[0].obs_ts == utc("2022-05-23T10:15:00Z") and out[0].obs_ts.tzinfo is not None
    assert out[1].obs_ts == ts  # no duedate: the capture time
    assert out[0].is_installed is True and out[0].lat == 48.85
    assert report.counts == {}


def test_real_bundled_sample_reads_clean(storage):
    root = str(st.local_path(__file__).parents[2] / "sample_data")
    refs = list_snapshots(storage, root, utc("2022-05-22T23:30Z"), utc("2022-05-28T00:00Z"))
    assert len(refs) == 85
    report = SkipReport()
    recs = read_snapshot(storage, refs[0], ValidationPolicy(), report)
    assert len(recs) == 1413 and report.total("records_rejected") == 0


def test_encode_is_deterministic():
    ts = utc("2022-05-23T10:30:00Z")
    assert encode_snapshot([rec()], ts) == encode_snapshot([rec()], ts)
    assert b'"capture_ts_utc":"2022-05-23T10:30:00Z"' in gzip.decompress(encode_snapshot([rec()], ts))


def test_fetch_retries_transient_errors(tmp_path, storage, monkeypatch):
    from velibcast.datasets import snapshots as snap
    from velibcast.errors import TransientStorageError

    monkeypatch.setattr(snap.C, "FETCH_BACKOFF_S", 0.0)
    uri = write_snapshot(storage, str(tmp_path), utc("2022-05-23T10:00Z"), [rec()])
    real, calls = storage.read_bytes, []

    def flaky(u):
        calls.append(u)
        if len(calls) < 3:
            raise TransientStorageError("503 SlowDown")
        return real(u)

    monkeypatch.setattr(storage, "read_bytes", flaky)
    assert snap.fetch_bytes(storage, uri) == real(uri)
    assert len(calls) == 3
    calls.clear()
    with pytest.raises(TransientStorageError):
        snap.fetch_bytes(storage, uri, attempts=2)


def test_fetch_many_keeps_order_with_bounded_concurrency(tmp_path, storage):
    from velibcast.datasets.snapshots import fetch_many

    t0 = utc("2022-05-23T00:00Z")
    refs = [SnapshotRef(write_snapshot(storage, str(tmp_path), t0 + timedelta(hours=i), [rec(str(i))]),
                        t0 + timedelta(hours=i)) for i in range(20)]
    got = [f.ref for f in fetch_many(storage, refs, concurrency=3)]
    assert got == refs


def test_fetch_many_gunzips_small_objects_ahead_and_leaves_bad_ones_to_the_reader(tmp_path, storage):
    from velibcast.datasets.snapshots import fetch_many, parse_snapshot_columns

    t0 = utc("2022-05-23T12:00Z")
    good = SnapshotRef(write_snapshot(storage, str(tmp_path), t0, [rec("1"), rec("2")]), t0)
    big = SnapshotRef(write_snapshot(storage, str(tmp_path), t0 + timedelta(hours=1), [rec(str(i)) for i in range(50)]),
                      t0 + timedelta(hours=1))
    bad = SnapshotRef(str(tmp_path / "velib/snapshots/2022-05-23T14-00-00Z.jsonl.gz"), t0 + timedelta(hours=2))
    storage.write_bytes(bad.uri, b"\x1f\x8b not gzip")
    limit = len(storage.read_bytes(good.uri))
    got = list(fetch_many(storage, [good, big, bad], gunzip_below=limit))
    assert got[0].raw == gzip.decompress(got[0].data)
    assert got[1].raw is None and got[2].raw is None  # too big; not gzip
    report = SkipReport()
    cols = [parse_snapshot_columns(f.data, f.ref, ValidationPolicy(), report, raw=f.raw) for f in got]
    assert [len(c) for c in cols] == [2, 50, 0]
    assert report.counts == {"corrupt_gzip": 1} and report.examples["corrupt_gzip"][0].startswith(bad.uri)
