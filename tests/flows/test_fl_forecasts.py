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


@pytest.mark.parametrize("values, problem", [
    ("-5,6,7", r"bikes_pred -5 is outside \[0, 35\]"),
    ("5,36,7", r"bikes_pred 36 is outside \[0, 35\]"),
    ("5,6,2147483648", r"bikes_pred 2147483648 is outside \[0, 35\]"),        # above int32
    ("5,6,99999999999999999999", r"bikes_pred 1e\+20 is outside \[0, 35\]"),  # above int64
])
def test_a_prediction_outside_zero_to_capacity_is_named_by_object_line_record_and_station(values, problem):
    out = f"9020@2022-05-25T22:00Z,1,2,3\n16107@2022-05-25T22:00Z,{values}\n".encode()
    with pytest.raises(DataError, match=r"o.out line 2, record 16107@2022-05-25T22:00Z \(station 16107, \+\d h\): "
                                        + problem + r".*output_fn.*nothing was published") as info:
        forecasts.join_predictions(SENT, [("o.out", out)], "csv", "v", "r")
    assert isinstance(info.value, DataError)


def test_a_json_prediction_too_large_for_a_float_is_a_data_error_naming_its_line():
    out = (b'{"record_id":"16107@2022-05-25T22:00Z","SageMakerOutput":[5,6,' + b"9" * 400 + b']}\n')
    with pytest.raises(DataError, match="o.out line 1: "):
        forecasts.join_predictions(SENT, [("o.out", out)], "jsonl", "v", "r")


def test_the_allowed_ranges_are_one_table_of_output_columns():
    """Adding an output column to check is one line: its name and its bounds (a bound naming a
    column is the record's own value of it)."""
    assert forecasts.PREDICTION_RANGES == {"bikes_pred": (0, "capacity")}
