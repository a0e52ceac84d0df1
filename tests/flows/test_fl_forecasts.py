"""Join back: exactly one prediction per sent record; the table readers get."""

from datetime import date, datetime

import pyarrow.dataset as pads
import pytest

from velibcast.errors import DataError
from velibcast.flows import forecasts
from velibcast.timeutil import UTC

T0 = datetime(2022, 5, 25, 22, tzinfo=UTC)
SENT = {
    "16107@2022-05-25T22:00Z": forecasts.SentRecord("16107", T0, 35, False),
    "9020@2022-05-25T22:00Z": forecasts.SentRecord("9020", T0, 21, True),
}


def test_join_gives_three_rows_per_record_with_targets():
    out = b"16107@2022-05-25T22:00Z,5,6,7\n9020@2022-05-25T22:00Z,1,2,3\n"
    t = forecasts.join_predictions(SENT, [("s3://b/x.csv.out", out)], "csv", "v1", "run1")
    assert t.num_rows == 6
    rows = t.to_pylist()
    assert rows[0]["station_code"] == "16107" and rows[0]["horizon_h"] == 1
    assert [r["bikes_pred"] for r in rows if r["station_code"] == "9020"] == [1, 2, 3]
    assert rows[2]["target_ts"] == datetime(2022, 5, 26, 1, tzinfo=UTC)


def test_missing_duplicate_and_foreign_predictions_are_named():
    with pytest.raises(DataError, match="1 of 2 records have no prediction"):
        forecasts.join_predictions(SENT, [("o.out", b"16107@2022-05-25T22:00Z,5,6,7\n")], "csv", "v", "r")
    dup = b"16107@2022-05-25T22:00Z,5,6,7\n16107@2022-05-25T22:00Z,5,6,7\n"
    with pytest.raises(DataError, match=r"o.out line 2: second prediction"):
        forecasts.join_predictions(SENT, [("o.out", dup)], "csv", "v", "r")
    with pytest.raises(DataError, match="never sent"):
        forecasts.join_predictions(SENT, [("o.out", b"x@y,1,2,3\n")], "csv", "v", "r")
    with pytest.raises(DataError, match="o.out line 1: expected 3 outputs"):
        forecasts.join_predictions(SENT, [("o.out", b"a,1\n")], "csv", "v", "r")
    # a model whose output_fn writes another encoding: a DataError naming the line, not a UnicodeDecodeError
    with pytest.raises(DataError, match="o.out line 2: byte .* is not UTF-8"):
        forecasts.join_predictions(SENT, [("o.out", b"16107@2022-05-25T22:00Z,5,6,7\n9020@2022-05-25T22:00Z,\xff\n")],
                                   "csv", "v", "r")


def test_jsonl_outputs_join_too():
    out = (b'{"record_id":"16107@2022-05-25T22:00Z","SageMakerOutput":[5,6,7]}\n'
           b'{"record_id":"9020@2022-05-25T22:00Z","SageMakerOutput":{"bikes_h1":1,"bikes_h2":2,"bikes_h3":3}}\n')
    t = forecasts.join_predictions(SENT, [("o.out", out)], "jsonl", "v", "r")
    assert sorted(t.column("bikes_pred").to_pylist()) == [1, 2, 3, 5, 6, 7]


def test_publish_replaces_a_date_whole(tmp_path, storage):
    root = str(tmp_path)
    out = b"16107@2022-05-25T22:00Z,5,6,7\n9020@2022-05-25T22:00Z,1,2,3\n"
    t = forecasts.join_predictions(SENT, [("o.out", out)], "csv", "v1", "run1")
    forecasts.publish(storage, root, date(2022, 5, 26), t)
    forecasts.publish(storage, root, date(2022, 5, 26), t)
    ds = pads.dataset(str(tmp_path / "forecasts"), format="parquet", partitioning="hive")
    assert ds.to_table().num_rows == 6
