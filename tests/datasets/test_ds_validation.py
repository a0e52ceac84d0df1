"""Each validation rule: its count and its message, under skip; the fail policy names object + line."""

import gzip
from pathlib import Path

import pytest

from tests.datasets.ds_helpers import rec, utc
from velibcast.config import load_config
from velibcast.datasets.report import SkipReport, ValidationPolicy
from velibcast.datasets.snapshots import (
    SnapshotRef,
    capture_ts_from_key,
    encode_snapshot,
    parse_snapshot,
    parse_snapshot_columns,
)
from velibcast.errors import ConfigError, DataError

TS = utc("2022-05-23T10:30:00Z")
REF = SnapshotRef("s3://b/r/velib/snapshots/2022-05-23T10-30-00Z.jsonl.gz", TS)


def parse(records=None, raw: bytes | None = None, policy=ValidationPolicy()):
    """Both parsers: the columnar one must count and word everything as the record one does."""
    data = raw if raw is not None else encode_snapshot(records, TS)
    report, fast = SkipReport(), SkipReport()
    out = parse_snapshot(data, REF, policy, report)
    cols = parse_snapshot_columns(data, REF, policy, fast)
    assert fast.to_dict() == report.to_dict()
    assert cols.codes == [r.station_code for r in out]
    assert cols.obs.tolist() == [int(r.obs_ts.timestamp()) for r in out]
    return out, report


@pytest.mark.parametrize("bad, reason, words", [
    (rec("9", bikes="5"), "bad_type", "numbikesavailable='5' is not an integer"),
    (rec("9", capacity=20.0), "bad_type", "capacity=20.0 is not an integer"),
    (rec("9", installed=1), "bad_type", 'is_installed=1 is not "OUI" or "NON"'),
    (rec(code=9), "bad_type", "stationcode 9 is not a non-empty string"),
    (rec("9", docks=-1), "negative_count", "numdocksavailable=-1 is negative"),
    (rec("9", coordonnees_geo=None), "missing_coords", "coordonnees_geo=None lacks numeric lat/lon"),
    (rec("9", coordonnees_geo={"lat": 48.8}), "missing_coords", "lacks numeric lat/lon"),
    (rec("9", due="yesterday"), "bad_duedate", "duedate='yesterday' is not ISO-8601 with an offset"),
    (rec("9", due="2022-05-23T10:00:00"), "bad_duedate", "is not ISO-8601 with an offset"),
    (rec("1"), "duplicate_station", "station 1 already read from this snapshot"),
    # what the model server would refuse (one record used to fail a whole shard)
    (rec("9", lat=1000), "out_of_area", "lat 1000, lon 2.35 is outside the service area"),
    (rec("9", lon=-2.35), "out_of_area", "lon -2.35 is outside the service area"),
    (rec("9", lat=2 ** 63), "out_of_area", "is outside the service area"),
    (rec("9", capacity=2 ** 40), "implausible_count", f"capacity={2 ** 40} is above 200"),
    (rec("9", capacity=2 ** 63), "implausible_count", "is above 200"),
    (rec("9", bikes=201), "implausible_count", "numbikesavailable=201 is above 200"),
    (rec("16,107"), "bad_station_code", "stationcode '16,107' is not"),
    (rec('16"107'), "bad_station_code", "is not [0-9A-Za-z_-]{1,32}"),
    (rec("16107\n"), "bad_station_code", "is not"),
    (rec("9", due="2022-05-23T10:00:00+99:99"), "bad_duedate", "+99:99' is not ISO-8601 with an offset"),
    (rec("9", due="0001-01-01T00:00:00+01:00"), "bad_duedate", "is out of range"),
    (rec("9", due="2022-05-23T18:30:00+00:00"), "future_duedate", "is 28800 s after the capture 2022-05-23T10:30:00Z"),
])
def test_record_rules_count_and_message(bad, reason, words):
    out, report = parse([rec("1"), bad, rec("2")])
    assert [r.station_code for r in out] == ["1", "2"]
    assert report.counts == {reason: 1}
    assert report.examples[reason] == [f"{REF.uri} line 2: " + report.examples[reason][0].split(": ", 1)[1]]
    assert words in report.examples[reason][0]


def test_bad_json_line():
    good = gzip.decompress(encode_snapshot([rec("1")], TS))
    out, report = parse(raw=gzip.compress(good + b'{"stationcode": "2", \n'))
    assert len(out) == 1 and report.counts == {"bad_json": 1}
    assert report.examples["bad_json"][0].startswith(f"{REF.uri} line 2: not JSON")


def test_over_capacity_is_flagged_and_kept():
    out, report = parse([rec("1", bikes=9, docks=20, capacity=28)])
    assert len(out) == 1 and out[0].bikes == 9  # kept unchanged: real feeds do this
    assert report.counts == {"over_capacity": 1}
    assert report.examples["over_capacity"] == [f"{REF.uri} line 1: station 1: bikes 9 + docks 20 > capacity 28"]
    assert report.total("records_rejected") == 0 and report.total("flagged") == 1


def test_truncated_gzip_object():
    data = encode_snapshot([rec(str(i)) for i in range(50)], TS)
    out, report = parse(raw=data[: len(data) // 2])
    assert out == [] and report.counts == {"corrupt_gzip": 1}
    assert report.examples["corrupt_gzip"][0].startswith(f"{REF.uri}: cannot gunzip (EOFError")


def test_corrupt_gzip_object():
    out, report = parse(raw=b"this is not gzip")
    assert out == [] and report.counts == {"corrupt_gzip": 1}
    assert "BadGzipFile" in report.examples["corrupt_gzip"][0]


@pytest.mark.parametrize("raw, detail", [(b"", "object has 0 bytes"), (gzip.compress(b"\n\n"), "object holds no line")])
def test_empty_object(raw, detail):
    out, report = parse(raw=raw)
    assert out == [] and report.counts == {"empty_object": 1}
    assert report.examples["empty_object"] == [f"{REF.uri}: {detail}"]


def test_fail_policy_names_object_and_line():
    with pytest.raises(DataError) as e:
        parse([rec("1"), rec("2", bikes=-3)], policy=ValidationPolicy(on_bad_record="fail"))
    assert str(e.value).startswith(f"{REF.uri} line 2: negative_count: station 2: numbikesavailable=-3 is negative")
    with pytest.raises(DataError, match="cannot gunzip"):
        parse(raw=b"xx", policy=ValidationPolicy(on_bad_object="fail"))
    # a flagged record never fails the run
    out, _ = parse([rec("1", bikes=30)], policy=ValidationPolicy(on_bad_record="fail", on_bad_object="fail"))
    assert len(out) == 1


def test_policy_rejects_unknown_mode():
    with pytest.raises(ConfigError, match="on_bad_record='drop'"):
        ValidationPolicy(on_bad_record="drop")


def test_partial_snapshot_is_flagged_in_a_run(real_store, storage):
    from velibcast.datasets.windows import SnapshotSource

    report = SkipReport()
    src = SnapshotSource(storage, real_store, utc("2022-05-23T00:00Z"), utc("2022-05-26T00:00Z"),
                         ValidationPolicy(), report)
    src.between(utc("2022-05-23T00:00Z"), utc("2022-05-26T00:00Z"))
    assert report.counts["partial_snapshot"] == 3
    ex = report.examples["partial_snapshot"]
    assert "2022-05-23T22-40-15Z" in ex[0] and ex[0].endswith("309 stations, median of the previous 12 is 1413")
    assert "1081 stations" in ex[1] and "1337 stations" in ex[2]


def test_duedate_within_the_tolerance_is_kept():
    out, report = parse([rec("1", due="2022-05-23T10:35:00+00:00"), rec("2", due="2022-05-23T10:35:01+00:00")])
    assert [r.station_code for r in out] == ["1"] and report.counts == {"future_duedate": 1}


def test_a_rejected_record_never_leaves_the_parser():
    """The values the server refuses stop here: the arrays hold only the good station."""
    bad = [rec("2", lat=1000), rec("3", capacity=2 ** 40), rec("4,5"), rec("6", due="2022-05-23T10:00:00+99:99")]
    cols = parse_snapshot_columns(encode_snapshot([rec("1"), *bad], TS), REF, ValidationPolicy(), SkipReport())
    assert cols.codes == ["1"] and cols.capacity.tolist() == [20] and cols.lat.tolist() == [48.85]


def test_fail_policy_names_object_and_line_for_the_new_rules():
    with pytest.raises(DataError) as e:
        parse_snapshot_columns(encode_snapshot([rec("1"), rec("2", lat=1000)], TS), REF,
                               ValidationPolicy(on_bad_record="fail"), SkipReport())
    assert str(e.value).startswith(f"{REF.uri} line 2: out_of_area: station 2: lat 1000")
    assert "velibcast/constants.py" in str(e.value)


@pytest.mark.parametrize("due", [None, "2022-05-23T10:00:00.250+02:00", "2022-05-23T08:00:00Z", "2022-05-23T05:00:00-03:30",
                                 "2022-05-23T10:00:00+00:60", "2022-05-23T10:00:00+23:59", "2022-05-23 10:00:00+02:00"])
def test_columnar_and_record_parsers_agree_on_valid_variants(due):
    out, report = parse([rec("1", due=due), rec("2", due="2022-05-23T10:00:00+02:00")])
    assert len(out) == 2 and report.counts == {}


def test_columnar_parser_on_the_real_sample(storage):
    paths = sorted(str(p) for p in (Path(__file__).parents[2] / "sample_data/velib/snapshots").glob("*.jsonl.gz"))[:6]
    assert len(paths) == 6, "the bundled sample is where this test looks for it"
    for path in paths:
        ref = SnapshotRef(path, capture_ts_from_key(path))
        data = storage.read_bytes(path)
        a, b = SkipReport(), SkipReport()
        recs = parse_snapshot(data, ref, ValidationPolicy(), a)
        cols = parse_snapshot_columns(data, ref, ValidationPolicy(), b)
        assert a.to_dict() == b.to_dict()
        assert cols.codes == [r.station_code for r in recs]
        assert cols.bikes.tolist() == [r.bikes for r in recs] and cols.lat.tolist() == [r.lat for r in recs]
        assert cols.installed.tolist() == [r.is_installed for r in recs]


def test_the_policy_comes_from_the_config_s_snapshots_section():
    cfg = load_config(overrides={"snapshots": {"on_bad_record": "fail", "on_bad_object": "skip"}})
    assert ValidationPolicy.from_config(cfg) == ValidationPolicy(on_bad_record="fail", on_bad_object="skip")
