"""A night with one bad record and one bad key of each kind, under on_bad_record: skip.

Before, `lat: 1000` or a station code with a comma passed validation and the model server
refused the whole shard (the job failed, each rerun a new attempt); `capacity: 2**40`
raised a bare ArrowInvalid; a key like `2022-05-26T25-61-00Z.jsonl.gz` a bare ValueError;
`+99:99` and a duedate 8 h ahead moved or overrode states silently; `x<ts>.jsonl.gz` and
`date=D/sub/<ts>.jsonl.gz` were read as snapshots; a misfiled capture was counted nowhere.
Now the night completes, every one is counted with its reason and an example naming the
object (and line), and none reaches a transform input shard or the published table.
"""

import gzip
import io
import json

import pyarrow.parquet as pq

from velibcast import storage as st
from velibcast.datasets.jsonio import dumps_bytes

TARGET = "2022-05-26T06-46-26Z.jsonl.gz"   # a capture inside the run's range
BAD_CODES = ["99001", "99002", "99,003", "99004", "99005", "99006"]


def _bad_lines(template: dict) -> list[bytes]:
    def rec(code, **changes):
        d = {**template, "stationcode": code, **changes}
        return dumps_bytes(d)

    geo = template["coordonnees_geo"]
    return [
        rec("99001", coordonnees_geo={**geo, "lat": 1000}),                       # out_of_area
        rec("99002", capacity=2 ** 40),                                           # implausible_count
        rec("99,003"),                                                            # bad_station_code (CSV)
        rec("99004", duedate="2022-05-26T06:40:00+99:99"),                        # bad_duedate
        rec("99005", duedate="2022-05-26T14:46:26+00:00"),                        # future_duedate (8 h ahead)
        dumps_bytes({**template, "stationcode": "99006"})[:-1] + b', "lat": NaN}',  # bad_json (non-finite)
    ]


def _inject(name, data):
    if name != TARGET:
        return data
    lines = gzip.decompress(data).rstrip(b"\n").split(b"\n")
    bad = _bad_lines(json.loads(lines[0]))
    return gzip.compress(b"\n".join(lines[:3] + bad + lines[3:]) + b"\n")


def test_a_night_with_one_bad_record_of_each_kind_completes_and_counts_each(tmp_path, storage, trained_model, e2e):
    root = str(tmp_path / "root")
    e2e.copy_snapshots(storage, root, _inject)
    base = st.join(root, "velib", "snapshots")
    body = storage.read_bytes(st.join(base, TARGET))
    bad_keys = {
        "bad_key": ["2022-05-26T25-61-00Z.jsonl.gz", "date=2022-05-26/x2022-05-26T06-10-00Z.jsonl.gz",
                    "date=2022-05-26/sub/2022-05-26T06-20-00Z.jsonl.gz"],
        "misfiled_key": ["date=2022-05-27/2022-05-26T06-30-00Z.jsonl.gz"],
    }
    for keys in bad_keys.values():
        for k in keys:
            storage.write_bytes(st.join(base, k), body)

    res = e2e.run(e2e.config(tmp_path, root, trained_model["model_uri"], snapshots={"on_bad_record": "skip",
                                                                                      "on_bad_object": "skip"}))
    m = json.loads(storage.read_text(res["manifest_uri"]))
    skips = m["skips"]
    # the bad objects: counted once each run (the listing is done once) with the key as example
    assert skips["counts"]["bad_key"] == 3 and skips["counts"]["misfiled_key"] == 1
    for reason, keys in bad_keys.items():
        for k in keys:
            assert any(k in e for e in skips["examples"][reason]), (reason, k)
    # the bad records: one of each, its example naming the object and the line
    expected = {"out_of_area": 4, "implausible_count": 5, "bad_station_code": 6, "bad_duedate": 7,
                "future_duedate": 8, "bad_json": 9}
    for reason, line in expected.items():
        assert skips["counts"][reason] == 1, reason
        assert skips["examples"][reason][0].startswith(f"{st.join(base, TARGET)} line {line}: "), reason
    assert m["counts"]["records_rejected"] == {r: 1 for r in expected}

    # the published table: nothing of the bad records, and it matches its manifest
    table = pq.read_table(io.BytesIO(storage.read_bytes(res["forecast_parquet"])))
    rows = table.select(["station_code", "origin_ts", "horizon_h"]).to_pylist()
    c = m["counts"]
    assert table.num_rows == c["forecast_rows"] == 3 * c["windows_emitted"] > 3000
    assert len({tuple(r.values()) for r in rows}) == table.num_rows
    assert not set(BAD_CODES) & set(table.column("station_code").to_pylist())
    # ... and none of it reached a transform input shard
    shards = [i.uri for i in storage.list(st.join(root, "runs", res["run_id"], "transform", "input") + "/")]
    assert shards
    for uri in shards:
        text = storage.read_bytes(uri).decode()
        assert not any(f"{code}@" in text for code in BAD_CODES), uri   # record ids are <code>@<origin>
        assert str(2 ** 40) not in text
