"""Transform inputs: layouts and filters derived from columns, CSV/JSONL lines, shards, outputs."""

import json
import threading

import numpy as np
import pytest

from tests.datasets.ds_helpers import utc
from tests.helpers import write_transform_inputs
from velibcast import constants as C
from velibcast import storage as st
from velibcast.datasets.records import (
    ShardWriter,
    csv_layout,
    csv_rows,
    jsonl_layout,
    output_lines,
    parse_output_line,
    shard_count_for,
)
from velibcast.datasets.windows import WindowBatch
from velibcast.errors import ConfigError, DataError, StorageError
from velibcast.transform_code.velib_features import FEATURE_COLUMNS, OUTPUT_COLUMNS


def win(code="16107", hour=22, bikes=3, n=1):
    """A batch of n windows of one origin (codes code, code+"1", ... when n > 1)."""
    codes = [code] if n == 1 else [f"{code}{i}" for i in range(n)]
    return WindowBatch(utc(f"2022-05-24T{hour:02d}:00Z"), np.array(codes, dtype=object),
                       np.full((n, 24), bikes, dtype=np.int64), (0, 2, 0, 1, 0, 0), np.full(n, 35), np.full(n, 12),
                       np.full(n, 48.865983), np.full(n, 2.275725), np.full(n, 17), np.zeros(n, np.int64),
                       np.zeros(n, bool),
                       np.array([c.encode() for c in codes], dtype="S"))


def test_csv_layout_filters_follow_columns():
    lay = csv_layout()
    assert lay.columns == ["record_id", *FEATURE_COLUMNS]
    assert lay.input_filter == "$[1:]" and lay.output_filter == f"$[0,-{len(OUTPUT_COLUMNS)}:]"
    assert lay.output_columns == ["record_id", *OUTPUT_COLUMNS]
    # another leading column moves the filter with it
    assert csv_layout(["record_id", "batch", *FEATURE_COLUMNS]).input_filter == "$[2:]"
    with pytest.raises(ConfigError, match="must end with the model's features"):
        csv_layout(["record_id", *reversed(FEATURE_COLUMNS)])
    d = lay.to_dict()
    assert d["content_type"] == "text/csv" and len(d["input_filter"]) <= C.FILTER_MAX_LEN


def test_jsonl_layout():
    lay = jsonl_layout()
    assert lay.input_filter == "$.features"
    assert lay.output_filter == "$['record_id','SageMakerOutput']"
    assert lay.content_type == "application/jsonlines"


def test_csv_shards_no_header_and_row_shape(any_root, storage):
    uris = write_transform_inputs(storage, [win(), win("31024_relais")], any_root + "/in", "csv")
    assert len(uris) == 1 and uris[0].endswith("/in/part-00000.csv")
    lines = storage.read_text(uris[0]).splitlines()
    assert lines[0].split(",")[0] == "16107@2022-05-24T22:00Z"  # no header line
    assert len(lines[0].split(",")) == 1 + len(FEATURE_COLUMNS)
    assert lines[0].endswith(",3,0,2,0,1,35,12,48.865983,2.275725,17,0,0,0")


def test_csv_rows_print_as_python_would(tmp_path, storage):
    b = win("a", n=3)
    b.lat[:] = [48.1, 0.1 + 0.2, 1e-7]
    b.history[1, 5] = 123456
    # the encoder alone: a ShardWriter refuses these implausible values (check_batch)
    want = ["".join(rid + "," + ",".join(map(repr, row)) + "\n")
            for rid, row in zip(b.record_ids(), b.feature_rows())]
    assert csv_rows(b).decode() == "".join(want)


def test_jsonl_record_shape(tmp_path, storage):
    [uri] = write_transform_inputs(storage, [win()], str(tmp_path / "in"), "jsonl")
    d = json.loads(storage.read_text(uri))
    assert d == {"record_id": "16107@2022-05-24T22:00Z", "station_code": "16107", "origin_ts": "2022-05-24T22:00:00Z",
                 "features": {"history": [3] * 24, "hour": 0, "day_of_week": 2, "non_working_day": 0,
                              "non_working_next_day": 1, "capacity": 35, "station_index": 12, "lat": 48.865983,
                              "lon": 2.275725, "state_age_min": 17, "stale": 0,
                              "clock_change_h": 0, "clock_change_horizon": 0}}


def test_shards_respect_size_and_count(tmp_path, storage):
    ws = [win(str(i)) for i in range(100)] + [win("x", n=100)]  # one window per batch, then one batch of 100
    one = len(("0@2022-05-24T22:00Z," + ",".join(map(repr, ws[0].feature_rows()[0])) + "\n").encode())
    uris = write_transform_inputs(storage, ws, str(tmp_path / "a"), "csv", max_shard_bytes=one * 30)
    sizes = [len(storage.read_bytes(u)) for u in uris]
    assert max(sizes) <= one * 30 + 200 and len(uris) >= 7
    lines = [l for u in uris for l in storage.read_text(u).splitlines()]
    assert sorted(l.split(",")[0] for l in lines) == sorted(r for w in ws for r in w.record_ids())
    uris = write_transform_inputs(storage, [win("y", n=10)], str(tmp_path / "b"), "csv", shard_count=shard_count_for(2, 2))
    assert len(uris) == 4
    # dealt round-robin: 10 records over 4 shards -> 3, 3, 2, 2, each line whole
    assert sorted(len(storage.read_text(u).splitlines()) for u in uris) == [2, 2, 3, 3]
    with pytest.raises(DataError, match="raise max_shard_bytes"):
        write_transform_inputs(storage, ws[:1], str(tmp_path / "c"), "csv", max_shard_bytes=10)


def test_manifest_file(any_root, storage):
    uris = write_transform_inputs(storage, [win(str(i)) for i in range(4)], any_root + "/in", "csv",
                                  shard_count=2, manifest_uri=any_root + "/in.manifest")
    m = json.loads(storage.read_text(any_root + "/in.manifest"))
    assert m[0] == {"prefix": any_root + "/in/"} and m[1:] == ["part-00000.csv", "part-00001.csv"]
    assert [m[0]["prefix"] + k for k in m[1:]] == uris


def parse_output(data: bytes, fmt: str, where: str) -> list:
    """One `.out` object's records, as forecasts.join_predictions reads them."""
    return [parse_output_line(text, fmt, f"{where} line {n}") for n, text in output_lines(data, where)]


def test_parse_output_csv_and_json():
    """Output lines are parsed to numbers only: their width, ranges and order are the join's to
    check (flows/forecasts.py), where a bad value is named with its record and station."""
    assert parse_output(b"a@x,1,2,0.05\nb@x,4,5,6\n", "csv", "o") == [("a@x", [1, 2, 0.05]), ("b@x", [4, 5, 6])]
    js = b'{"record_id": "a@x", "SageMakerOutput": "1,2,3"}\n{"record_id": "b@x", "SageMakerOutput": [4, 5, 0.5]}\n'
    assert parse_output(js, "jsonl", "o") == [("a@x", [1, 2, 3]), ("b@x", [4, 5, 0.5])]
    with pytest.raises(DataError, match="o line 1: output value 'x' is not a number"):
        parse_output(b"a@x,1,x\n", "csv", "o")
    with pytest.raises(DataError, match="o line 2: "):
        parse_output(b'{"record_id": "a@x", "SageMakerOutput": [1]}\n{"record_id": "b@x", "SageMakerOutput": ['
                     + b"9" * 400 + b"]}\n", "jsonl", "o")  # a JSON integer no float holds


def _set_code(b, i, code):
    """A station code changed as the window path makes it: the string and the bytes the CSV writes."""
    b.station_codes[i] = code
    b.code_bytes = np.array([c.encode() for c in b.station_codes.tolist()], dtype="S")


@pytest.mark.parametrize("change, words", [
    (lambda b: b.lat.__setitem__(1, 1000.0), "lat 1000.0 outside [48.6, 49.1]"),
    (lambda b: b.capacity.__setitem__(1, 2 ** 40), f"capacity {2 ** 40} outside [0, 200]"),
    (lambda b: b.lat.__setitem__(1, float("nan")), "lat nan outside [48.6, 49.1]"),  # a range check NaN must fail
    (lambda b: b.history.__setitem__((1, 3), 500), "a history value outside [0, 200]"),
    (lambda b: b.history.__setitem__((1, 0), -1), "a history value outside [0, 200]"),
    (lambda b: _set_code(b, 1, "16,1"), "station code '16,1' is not"),
    (lambda b: _set_code(b, 1, "16é"), "station code '16é' is not"),
    (lambda b: _set_code(b, 1, "1" * 33), "is not [0-9A-Za-z_-]{1,32}"),
    (lambda b: _set_code(b, 1, ""), "station code '' is not"),
])
def test_no_shard_holds_a_record_the_server_would_refuse(tmp_path, storage, change, words):
    """The invariant behind snapshot validation: a bug upstream fails here, by record id."""
    b = win(n=3)
    change(b)
    w = ShardWriter(storage, str(tmp_path / "in"))
    with pytest.raises(DataError) as e:
        w.add(b)
    assert str(e.value).startswith(b.record_ids()[1]) and words in str(e.value)
    assert not list(storage.list(str(tmp_path / "in") + "/"))


def test_parse_output_names_the_line_of_a_non_utf8_byte():
    with pytest.raises(DataError) as e:
        parse_output(b"a@x,1,2,3\nb@x,1,\xff,3\n", "csv", "s3://b/out/part-0.csv.out")
    assert str(e.value).startswith("s3://b/out/part-0.csv.out line 2") and "not UTF-8" in str(e.value)


class _GatedStorage(st.Storage):
    """A real local store whose shard writes wait for a gate, counting how many run at once."""

    def __init__(self, fail_on: str | None = None):
        super().__init__()
        self.gate, self.lock = threading.Event(), threading.Lock()
        self.running = self.most = 0
        self.fail_on = fail_on

    def write_bytes(self, uri, data, content_type=None):
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            assert self.gate.wait(timeout=60)
            if self.fail_on and uri.endswith(self.fail_on):
                raise StorageError(f"{uri}: PUT refused (403)")
            super().write_bytes(uri, data, content_type)
        finally:
            with self.lock:
                self.running -= 1


def _shard_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("shard-write")]


def test_full_shards_are_written_in_the_background_a_bounded_number_at_a_time(tmp_path):
    storage = _GatedStorage()
    one = len(csv_rows(win()))
    w = ShardWriter(storage, str(tmp_path / "in"), max_shard_bytes=one * 2)
    # two records a shard: the 3rd and the 5th record each start a shard's write, held at the gate,
    # and add returns all the same (a write in the caller's thread would wait here)
    for i in range(5):
        w.add(win(str(16000 + i)))
    assert C.SHARD_WRITES_IN_FLIGHT == 2 and storage.running == 2 and list(storage.list(str(tmp_path / "in") + "/")) == []
    storage.gate.set()
    for i in range(9):
        w.add(win(str(17000 + i)))
    uris = w.close()
    assert storage.most == C.SHARD_WRITES_IN_FLIGHT  # never more at once, however many shards fill
    assert [u.rsplit("/", 1)[1] for u in uris] == [f"part-{k:05d}.csv" for k in range(7)]
    lines = [ln for u in uris for ln in storage.read_text(u).splitlines()]
    assert [ln.split("@")[0] for ln in lines] == [str(16000 + i) for i in range(5)] + [str(17000 + i) for i in range(9)]
    assert _shard_threads() == []


def test_a_failed_shard_write_fails_the_close_and_leaves_no_thread(tmp_path):
    storage = _GatedStorage(fail_on="part-00001.csv")
    storage.gate.set()
    one = len(csv_rows(win()))
    w = ShardWriter(storage, str(tmp_path / "in"), max_shard_bytes=one)
    with pytest.raises(StorageError, match="part-00001.csv: PUT refused"):
        for i in range(6):
            w.add(win(str(16000 + i)))
        w.close(str(tmp_path / "manifest.json"))
    w.abandon()
    assert _shard_threads() == []
    assert not storage.exists(str(tmp_path / "manifest.json"))  # no manifest names a shard that is not there
