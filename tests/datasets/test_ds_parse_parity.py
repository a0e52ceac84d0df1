"""Property: the columnar fast path and the record path agree on every snapshot.

Hypothesis builds snapshots from records that are mostly valid, with fields replaced by
edge values (wrong types, bounds +-1, huge integers, odd duedates and offsets, codes with
CSV/JSON metacharacters), lines rewritten where msgspec's decoder and orjson could part
(duplicate keys, escapes, whitespace, extra fields, invalid UTF-8, overflowing numbers,
deep nesting), and stray lines. Both parsers must keep the same records with the
same values and count the same reasons with the same messages, or, under `fail`, raise
the same DataError; neither may raise anything else.
"""

import gzip
import os
from datetime import datetime
from unittest import mock

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs

from velibcast import constants as C
from velibcast import storage as st
from velibcast.datasets.jsonio import dumps_bytes
from velibcast.datasets.report import SkipReport, ValidationPolicy
from velibcast.datasets.snapshots import (
    SnapshotRef,
    _clean_typed,
    _line_count,
    _obs_seconds_fixed,
    list_snapshots,
    parse_snapshot,
    parse_snapshot_columns,
)
from velibcast.errors import DataError
from velibcast.timeutil import UTC

CAPTURE = datetime(2022, 5, 23, 10, 30, tzinfo=UTC)
REF = SnapshotRef("s3://b/r/velib/snapshots/2022-05-23T10-30-00Z.jsonl.gz", CAPTURE)
LAT, LON = C.SERVICE_AREA_LAT, C.SERVICE_AREA_LON

_ODD: list[object] = [None, True, False, "5", 1.0, -1, 2 ** 63, 2 ** 64 - 1, [], {}, ""]
counts = hs.one_of(hs.integers(0, 90), hs.sampled_from([0, C.STATION_COUNT_MAX, C.STATION_COUNT_MAX + 1, -1, 2 ** 40]),
                   hs.sampled_from(_ODD))
capacity = hs.one_of(hs.integers(0, 80), hs.sampled_from([C.STATION_CAPACITY_MAX, C.STATION_CAPACITY_MAX + 1, 2 ** 40]),
                     hs.sampled_from(_ODD))
flag = hs.one_of(hs.sampled_from(["OUI", "NON"]), hs.sampled_from(["oui", "", None, 1, True, ["OUI"], {"a": 1}]))


def _coord(lo, hi):
    return hs.one_of(hs.floats(lo, hi), hs.sampled_from([lo, hi, int(lo), int(hi) + 1, 1000, -1000, 2 ** 63]),
                     hs.floats(lo - 1, hi + 1), hs.sampled_from([None, "48.8", True]))


geo = hs.one_of(hs.fixed_dictionaries({"lat": _coord(*LAT), "lon": _coord(*LON)}),
                hs.sampled_from([None, [], "48.8,2.3", {"lat": 48.8}]))

_two = hs.integers(0, 99).map("{:02d}".format)
local_time = hs.tuples(hs.sampled_from(["2022", "0000", "0001", "1969", "9999"]), _two, _two,
                       hs.sampled_from(["T", " ", "x"]), _two, _two, _two)
offset = hs.one_of(hs.sampled_from(["+00:00", "+02:00", "-03:30", "Z", "", "+99:99", "+23:59", "+24:00", "+00:60", "-23:59",
                                    "+0200", "+02", "+02:00:00"]),
                   hs.tuples(hs.sampled_from("+-"), _two, _two).map(lambda t: f"{t[0]}{t[1]}:{t[2]}"))
frac = hs.sampled_from(["", "", ".250", ".5", ".999999"])


@hs.composite
def duedate(draw):
    kind = draw(hs.integers(0, 5))
    if kind == 0:
        return draw(hs.sampled_from([None, 1653300000, "yesterday", "", ["2022"]]))
    if kind == 1:  # near the capture, where the future_duedate tolerance sits
        sec = draw(hs.integers(-7200, 2 * C.FUTURE_DUEDATE_TOLERANCE_S))
        t = datetime.fromtimestamp(CAPTURE.timestamp() + sec, UTC)
        return t.strftime("%Y-%m-%dT%H:%M:%S") + draw(frac) + draw(hs.sampled_from(["+00:00", "Z"]))
    if kind < 4:  # a valid local time before the capture, any offset: the fast path's own shape
        t = datetime.fromtimestamp(CAPTURE.timestamp() - draw(hs.integers(0, 3 * 86400)), UTC)
        return t.strftime("%Y-%m-%dT%H:%M:%S") + draw(hs.sampled_from(["", "", "", ".5"])) + draw(offset)
    y, mo, d, sep, h, mi, s = draw(local_time)
    return f"{y}-{mo}-{d}{sep}{h}:{mi}:{s}" + draw(frac) + draw(offset)


code = hs.one_of(hs.integers(1000, 1012).map(str), hs.sampled_from(["31024_relais", "16,107", '16"107', "16107\n", "",
                                                                      "a" * 33, "1 2", "١٢٣", "16107@x", 16107, None]))


@hs.composite
def record(draw):
    d = {"stationcode": draw(code), "name": "n", "is_installed": draw(flag), "capacity": draw(capacity),
         "numdocksavailable": draw(counts), "numbikesavailable": draw(counts), "mechanical": draw(counts),
         "ebike": draw(counts), "is_renting": draw(flag), "is_returning": draw(flag),
         "duedate": draw(duedate()), "coordonnees_geo": draw(geo)}
    for k in draw(hs.lists(hs.sampled_from(sorted(d)), max_size=1)):
        del d[k]  # a missing field
    return d


line = hs.one_of(record().map(dumps_bytes), record().map(dumps_bytes), record().map(dumps_bytes),
                 hs.sampled_from([b"", b"  ", b"[1]", b"null", b'{"stationcode": "1"', b"\xff\xfe", b'"x"']))


FIELDS = {"stationcode": code, "is_installed": flag, "is_renting": flag, "is_returning": flag, "capacity": capacity,
          "numdocksavailable": counts, "numbikesavailable": counts, "mechanical": counts, "ebike": counts,
          "duedate": duedate(), "coordonnees_geo": geo, "lat": _coord(*LAT), "lon": _coord(*LON)}


def _rewrites(line: bytes) -> list[bytes]:
    """The same record written otherwise: what a JSON decoder may read differently from orjson."""
    body = line[1:-1]
    return [
        b'{"capacity":"x",' + body + b"}",                      # a duplicate key, the first one bad
        b'{"capacity":2,' + body + b"}",                        # a duplicate key, the last one wins
        line[:-1] + b',"zzz":1e999}',                           # an unknown field orjson refuses
        line[:-1] + b',"zzz":1}',                               # an unknown field orjson reads
        line[:-1] + b',"code_insee_commune":"75056","station_opening_hours":null}',  # v2.1's other fields
        line[:-1] + b',"nom_arrondissement_communes":1e999}',
        line.replace(b'"name":"n"', b'"name":"\xff"'),         # invalid UTF-8
        line.replace(b'"name":"n"', b'"name":"\\ud800"'),     # a lone surrogate escape
        line.replace(b'"name":"n"', b'"name":' + b"[" * 1100 + b"]" * 1100),
        line.replace(b'"stationcode":"1', b'"stationcode":"\\u0031'),
        line.replace(b'"name":"n"', b'"name":"\\u0000"'),
        line.replace(b":", b" : ").replace(b",", b" ,\t"),      # JSON whitespace
        line + b"\r", b" " + line, line + b" x", line + line, line + b"," + line,
        line.replace(b'"lat":48.85', b'"lat":48').replace(b'"lon":2.35', b'"lon":true'),
        line.replace(b'"lon":2.35}', b'"lon":2.35,"alt":35}'),     # an extra field in coordonnees_geo
        line.replace(b'"capacity":30', b'"capacity":30.0'),
        line.replace(b'"capacity":30', b'"capacity":1' + b"0" * 30),
    ]


@hs.composite
def snapshot(draw):
    """Clean snapshots with one to three fields mutated, so the fast path is exercised and each
    edge value meets it alone; or snapshots of arbitrary records and stray lines."""
    if draw(hs.integers(0, 3)):
        base = dict(name="n", is_installed="OUI", capacity=30, numdocksavailable=10, numbikesavailable=5, mechanical=5,
                    ebike=0, is_renting="OUI", is_returning="OUI")
        n = draw(hs.integers(1, 6))
        recs = [{**base, "stationcode": str(1000 + i), "coordonnees_geo": {"lat": 48.85, "lon": 2.35},
                 "duedate": draw(hs.sampled_from(["2022-05-23T10:00:00+02:00", "2022-05-23T10:29:00+00:00"]))}
                for i in range(n)]
        for _ in range(draw(hs.integers(1, 3))):
            r = recs[draw(hs.integers(0, n - 1))]
            f = draw(hs.sampled_from(sorted(FIELDS)))
            v = draw(FIELDS[f])
            if f in ("lat", "lon"):
                if isinstance(r["coordonnees_geo"], dict):
                    r["coordonnees_geo"] = {**r["coordonnees_geo"], f: v}
            else:
                r[f] = v
        lines = [dumps_bytes(r) for r in recs]
        if draw(hs.integers(0, 2)) == 0:
            k = draw(hs.integers(0, n - 1))
            lines[k] = draw(hs.sampled_from(_rewrites(lines[k])))
        if draw(hs.integers(0, 4)) == 0:
            lines.insert(draw(hs.integers(0, n)), draw(line))
    else:
        lines = draw(hs.lists(line, min_size=0, max_size=8))
    body = b"\n".join(lines) + draw(hs.sampled_from([b"\n", b""]))
    return gzip.compress(body, mtime=0)


def _run(parser, data, policy):
    report = SkipReport()
    try:
        out = parser(data, REF, policy, report)
    except DataError as e:
        return ("error", str(e)), report.to_dict()
    if isinstance(out, list):  # the record path: StationRecords
        vals = ([r.station_code for r in out], [int(r.obs_ts.timestamp()) for r in out], [r.bikes for r in out],
                [r.capacity for r in out], [r.is_installed for r in out], [r.is_renting for r in out],
                [r.lat for r in out], [r.lon for r in out], [r.docks for r in out], [r.mechanical for r in out],
                [r.ebike for r in out], [r.is_returning for r in out])
    else:
        vals = (out.codes, out.obs.tolist(), out.bikes.tolist(), out.capacity.tolist(), out.installed.tolist(),
                out.renting.tolist(), out.lat.tolist(), out.lon.tolist(), out.docks.tolist(), out.mechanical.tolist(),
                out.ebike.tolist(), out.returning.tolist())
        assert out.obs.dtype == np.int64 and out.lat.dtype == np.float64
    return ("ok", vals), report.to_dict()


# CI runs a fixed set of 400 per policy (~30 s); VELIBCAST_FUZZ_EXAMPLES=N explores N random ones.
FUZZ_EXAMPLES = int(os.environ.get("VELIBCAST_FUZZ_EXAMPLES", "0")) or 400


@pytest.mark.parametrize("on_bad", ["skip", "fail"])
@settings(max_examples=FUZZ_EXAMPLES, deadline=None, derandomize="VELIBCAST_FUZZ_EXAMPLES" not in os.environ,
          database=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=snapshot(), block=hs.sampled_from([1, 300, C.PARSE_BLOCK_BYTES]))
def test_columnar_and_record_paths_agree(on_bad, data, block):
    policy = ValidationPolicy(on_bad_record=on_bad, on_bad_object=on_bad)
    with mock.patch.object(C, "PARSE_BLOCK_BYTES", block):
        fast = _run(parse_snapshot_columns, data, policy)
    slow = _run(parse_snapshot, data, policy)
    assert fast == slow
    if fast[0][0] == "ok":  # parsed again with its codes known: they are not checked again, the result is the same
        known = set(parse_snapshot_columns(data, REF, policy, SkipReport()).codes)
        again = _run(lambda d, r, p, rep: parse_snapshot_columns(d, r, p, rep, known_codes=known), data, policy)
        assert again == slow
    kept = slow[0][1] if slow[0][0] == "ok" else None
    if kept:  # what passes is what the model server accepts (velibcast.constants)
        codes, _, bikes, caps, _, _, lats, lons, *_ = kept
        assert all(0 <= c <= C.STATION_CAPACITY_MAX for c in caps) and all(0 <= b <= C.STATION_COUNT_MAX for b in bikes)
        assert all(LAT[0] <= v <= LAT[1] for v in lats) and all(LON[0] <= v <= LON[1] for v in lons)
        assert all("," not in c and '"' not in c and "\n" not in c for c in codes)


def test_known_codes_skip_the_pattern_check_but_not_the_duplicate_check():
    def snap(codes, bikes=5):
        recs = [dict(stationcode=c, name="n", is_installed="OUI", capacity=30, numdocksavailable=10,
                     numbikesavailable=bikes, mechanical=5, ebike=0, is_renting="OUI", is_returning="OUI",
                     duedate="2022-05-23T10:00:00+02:00", coordonnees_geo={"lat": 48.85, "lon": 2.35}) for c in codes]
        return gzip.compress(b"\n".join(map(dumps_bytes, recs)), mtime=0)

    known = {"1001", "1002", "1003"}
    with mock.patch("velibcast.datasets.snapshots._CODE_RE") as pattern:
        same = parse_snapshot_columns(snap(["1002", "1001", "1003"], bikes=7), REF, ValidationPolicy(), SkipReport(), known)
    assert pattern.fullmatch.call_count == 0 and same.codes == ["1002", "1001", "1003"] and same.bikes.tolist() == [7] * 3
    report = SkipReport()
    dup = parse_snapshot_columns(snap(["1001", "1001", "1003"]), REF, ValidationPolicy(), report, known)
    assert dup.codes == ["1001", "1003"] and report.counts["duplicate_station"] == 1  # found by the record path
    new = parse_snapshot_columns(snap(["1001", "16,107"]), REF, ValidationPolicy(), report, known)
    assert new.codes == ["1001"] and report.counts["bad_station_code"] == 1  # an unknown code is checked


def test_every_bundled_real_snapshot_takes_the_fast_path():
    """The parity property holds trivially if the fast path always gives up: the real feed must not."""
    root = str(st.local_path(__file__).parents[2] / "sample_data")
    storage = st.Storage()
    refs = list_snapshots(storage, root, datetime(2022, 5, 12, tzinfo=UTC), datetime(2022, 5, 28, tzinfo=UTC))
    assert len(refs) > 300
    with mock.patch("velibcast.datasets.snapshots.parse_snapshot", side_effect=AssertionError("record path")):
        for ref in refs[::7]:
            cols = parse_snapshot_columns(storage.read_bytes(ref.uri), ref, ValidationPolicy(), SkipReport())
            assert len(cols) > 300  # three real snapshots are partial (sample_data/README.md), none empty


@pytest.mark.parametrize("body, lines", [
    (b'{"a":1}', 1), (b'{"a":1}\n{"a":2}', 2), (b'{"a":"}\\n{"}\n{"a":2}', 2),
    (b'\n{"a":1}', None),                 # a blank first line
    (b'{"a":1}\n\n{"a":2}', None),        # a blank line inside
    (b'{"a":1}\r\n{"a":2}', None),        # CRLF: the record path reads it
    (b'{"a":1} \n{"a":2}', None), (b'{"a":1}\n {"a":2}', None),
    (b'{"a":\n1}', None),                 # a value across two lines
])
def test_lines_are_decoded_as_one_stream_only_between_a_close_and_an_open_brace(body, lines):
    assert _line_count(body, len(body)) == lines


def test_two_values_on_one_line_are_not_read_as_two_lines():
    """Three lines holding three values, one line holding two: the stream has four, the lines three."""
    recs = [dict(stationcode=str(1000 + i), name="n", is_installed="OUI", capacity=30, numdocksavailable=10,
                 numbikesavailable=5, mechanical=5, ebike=0, is_renting="OUI", is_returning="OUI",
                 duedate="2022-05-23T10:00:00+02:00", coordonnees_geo={"lat": 48.85, "lon": 2.35}) for i in range(4)]
    lines = [dumps_bytes(r) for r in recs]
    raw = lines[0] + b"\n" + lines[1] + lines[2] + b"\n" + lines[3] + b"\n"
    assert _line_count(raw, len(raw) - 1) == 3 and _clean_typed(raw, REF) is None
    report = SkipReport()
    cols = parse_snapshot_columns(gzip.compress(raw, mtime=0), REF, ValidationPolicy(), report)
    assert cols.codes == ["1000", "1003"] and report.counts == {"bad_json": 1}


EDGE_DUEDATES = ["2022-05-23T12:00:00+02:00", "2024-02-29T10:00:00+00:00", "2022-02-29T10:00:00+00:00",
                 "2022-04-31T10:00:00+00:00", "2022-13-01T10:00:00+00:00", "2022-00-10T10:00:00+00:00",
                 "2022-05-00T10:00:00+00:00", "2022-05-23T24:00:00+00:00", "2022-05-23T23:60:00+00:00",
                 "2022-05-23T23:59:60+00:00", "2022-05-23T23:59:59-23:59", "2022-05-23T01:00:00+00:60",
                 "2022-05-23T01:00:00+23:99", "2022-05-23T01:00:00+24:00", "2022-05-23T1a:00:00+00:00",
                 "2022-05-23T10:00:00+0a:00", "0000-05-23T10:00:00+00:00", "0001-01-01T00:00:00+00:00",
                 "1970-01-01T00:00:00+00:00", "1969-12-31T23:59:59+00:00", "2022-05-23T10:00:00,00:00",
                 "2022-05-23 10:00:00+00:00", "2022-05-23T10:00:00+02:00".replace("-", "/", 1),
                 "２022-05-23T10:00:00+00:00", "2022-05-23T10:00:00\x00+0:00"]


@pytest.mark.parametrize("due", EDGE_DUEDATES)
def test_duedates_read_by_position_agree_with_fromisoformat(due):
    """The strided-bytes reader (_obs_seconds_fixed) gives fromisoformat's epoch where the record
    path accepts the duedate, else gives up; alone and beside a plain duedate (all or nothing)."""
    plain = "2022-05-23T11:00:00+02:00"
    try:
        want = datetime.fromisoformat(due)
        expected = int(want.timestamp()) if want.tzinfo and 0 <= want.timestamp() <= CAPTURE.timestamp() else None
    except ValueError:
        expected = None
    for dues in ([due], [plain, due], [due, plain, plain]):
        got = _obs_seconds_fixed(dues, REF)
        if expected is None:
            assert got is None, dues
        elif due[10] == "T":  # the reader's own shape: it must not give up either
            assert got is not None and got.tolist()[dues.index(due)] == expected and got.dtype == np.int64
        else:  # another shape fromisoformat reads (a space for T): the record path reads it
            assert got is None
    east_west = _obs_seconds_fixed(["2022-05-23T12:00:00+02:00", "2022-05-23T06:00:00-02:00"], REF)
    assert east_west is not None and east_west.tolist() == [
        int(datetime(2022, 5, 23, 10, tzinfo=UTC).timestamp()), int(datetime(2022, 5, 23, 8, tzinfo=UTC).timestamp())]
