"""Join back: exactly one possible prediction per sent record, the product's horizons; the table readers get."""

import io
import json
from datetime import date, datetime, timedelta

import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest

from tests.helpers import output_line, output_values
from velibcast.errors import DataError
from velibcast.flows import forecasts
from velibcast.flows.products import DAY_AHEAD, EVALUATION, NOWCAST
from velibcast.timeutil import UTC
from velibcast.transform_code.velib_features import MAX_HORIZON, OUTPUT_COLUMNS, OUTPUT_QUANTITIES

T0 = datetime(2022, 5, 25, 22, tzinfo=UTC)
BIG, SMALL = "16107@2022-05-25T22:00Z", "9020@2022-05-25T22:00Z"
SENT = {
    BIG: forecasts.SentRecord("16107", T0, 35, False),
    SMALL: forecasts.SentRecord("9020", T0, 21, True),
}
# the point forecast of each horizon 1..MAX_HORIZON: BIG rises from 5, SMALL sits at 0 then fills up
BIG_BIKES = [5 + h for h in range(MAX_HORIZON)]
SMALL_BIKES = [0, 1, 21]
GOOD = (output_line(BIG, BIG_BIKES, 35) + "\n" + output_line(SMALL, SMALL_BIKES, 21) + "\n").encode()


def join(out: bytes, product=EVALUATION, fmt="csv", uri="s3://b/x.csv.out"):
    return forecasts.join_predictions(SENT, [(uri, out)], fmt, "v1", "run1", product)


def values_with(bikes, capacity, horizon, quantity, value) -> list[str]:
    """A record's output values with one of them, at `horizon` (1-based), replaced."""
    vals = output_values(bikes, capacity)
    vals[(horizon - 1) * len(OUTPUT_QUANTITIES) + OUTPUT_QUANTITIES.index(quantity)] = value
    return vals


def test_the_evaluation_product_keeps_horizons_one_to_three_with_their_targets():
    t = join(GOOD)
    assert t.schema == forecasts.SCHEMA
    assert t.num_rows == 2 * 3
    rows = t.to_pylist()
    assert [(r["station_code"], r["horizon_h"]) for r in rows] == [("16107", 1), ("16107", 2), ("16107", 3),
                                                                   ("9020", 1), ("9020", 2), ("9020", 3)]
    assert [r["target_ts"] for r in rows[:3]] == [T0 + timedelta(hours=h) for h in (1, 2, 3)]
    assert [r["bikes_pred"] for r in rows if r["station_code"] == "9020"] == [0, 1, 21]
    assert {(r["product"], r["fallback"], r["model_version"], r["run_id"]) for r in rows} == {("evaluation", "", "v1", "run1")}
    assert [(r["capacity"], r["unknown_station"]) for r in rows[::3]] == [(35, False), (21, True)]


def test_each_distribution_value_lands_in_its_column_and_horizon():
    """output_line: P10/P90 two bikes either side (clamped to [0, capacity]), P50 the point,
    p_empty / p_full 1 at 0 bikes / at capacity, else 0.05."""
    small = [r for r in join(GOOD).to_pylist() if r["station_code"] == "9020"]
    assert [(r["bikes_p10"], r["bikes_p50"], r["bikes_p90"]) for r in small] == [(0, 0, 2), (0, 1, 3), (19, 21, 21)]
    assert [(r["p_empty"], r["p_full"]) for r in small] == [(1.0, pytest.approx(0.05)), (pytest.approx(0.05),) * 2,
                                                           (pytest.approx(0.05), 1.0)]


def test_day_ahead_keeps_every_horizon_and_nowcast_the_first_three():
    day = join(GOOD, DAY_AHEAD)
    assert day.num_rows == 2 * MAX_HORIZON
    big = [r for r in day.to_pylist() if r["station_code"] == "16107"]
    assert [r["horizon_h"] for r in big] == list(range(1, MAX_HORIZON + 1))
    assert [r["bikes_pred"] for r in big] == BIG_BIKES
    assert big[-1]["target_ts"] == T0 + timedelta(hours=MAX_HORIZON)
    assert set(day.column("product").to_pylist()) == {"day-ahead"}
    now = join(GOOD, NOWCAST)
    assert set(now.column("horizon_h").to_pylist()) == {1, 2, 3} and now.num_rows == 2 * 3
    assert set(now.column("product").to_pylist()) == {"nowcast"}
    same = ["station_code", "origin_ts", "horizon_h", "bikes_pred", "bikes_p10", "bikes_p90", "p_empty"]
    assert now.select(same).equals(join(GOOD).select(same)), "nowcast and evaluation read the same output"


def test_missing_duplicate_and_foreign_predictions_are_named():
    with pytest.raises(DataError, match="1 of 2 records have no prediction"):
        join((output_line(BIG, [5], 35) + "\n").encode())
    dup = (output_line(BIG, [5], 35) + "\n" + output_line(BIG, [5], 35) + "\n").encode()
    with pytest.raises(DataError, match=rf"o.out line 2: second prediction for '{BIG}' \(first at o.out line 1\)"):
        join(dup, uri="o.out")
    with pytest.raises(DataError, match="o.out line 1: record_id 'x@y' was never sent"):
        join((output_line("x@y", [5], 35) + "\n").encode(), uri="o.out")
    with pytest.raises(DataError, match="o.out line 1: output value 'five' is not a number"):
        join(f"{BIG},five\n".encode(), uri="o.out")
    # a model whose output_fn writes another encoding: a DataError naming the line, not a UnicodeDecodeError
    with pytest.raises(DataError, match="o.out line 2: byte .* is not UTF-8"):
        join((output_line(BIG, [5], 35) + "\n").encode() + SMALL.encode() + b",\xff\n", uri="o.out")


@pytest.mark.parametrize("record, bikes, capacity, horizon, quantity, value, words", [
    (SMALL, SMALL_BIKES, 21, 2, "bikes", "22", "bikes not a whole number in [0, capacity] at +2 h"),
    (BIG, BIG_BIKES, 35, 1, "bikes_p10", "-1", "bikes_p10 not a whole number in [0, capacity] at +1 h"),
    (BIG, BIG_BIKES, 35, 3, "bikes", "7.5", "bikes not a whole number in [0, capacity] at +3 h"),
    (BIG, BIG_BIKES, 35, 5, "bikes_p50", "nan", "bikes_p50 not a whole number in [0, capacity] at +5 h"),
    (BIG, BIG_BIKES, 35, 1, "bikes_p90", "inf", "bikes_p90 not a whole number in [0, capacity] at +1 h"),
    (SMALL, SMALL_BIKES, 21, 1, "p_empty", "1.2", "p_empty outside [0, 1] at +1 h"),
    (SMALL, SMALL_BIKES, 21, 3, "p_full", "-0.1", "p_full outside [0, 1] at +3 h"),
    (BIG, BIG_BIKES, 35, 2, "p_full", "nan", "p_full outside [0, 1] at +2 h"),
    (BIG, BIG_BIKES, 35, 2, "bikes_p10", "10", "quantiles out of order at +2 h"),   # p10 above p50 (6)
    (BIG, BIG_BIKES, 35, 2, "bikes_p90", "5", "quantiles out of order at +2 h"),    # p90 below p50 (6)
    (BIG, BIG_BIKES, 35, 4, "fallback", "7", "fallback code not one of 0 (the model), 1 (persistence), 2 (profile) at +4 h"),
    (SMALL, SMALL_BIKES, 21, 1, "fallback", "0.5", "fallback code not one of 0 (the model), 1 (persistence), 2 (profile) at +1 h"),
    (SMALL, SMALL_BIKES, 21, 2, "fallback", "nan", "fallback code not one of 0 (the model), 1 (persistence), 2 (profile) at +2 h"),
    # a horizon the product does not keep: the model's output is wrong, none of its values is trusted
    (BIG, BIG_BIKES, 35, MAX_HORIZON, "bikes", "36", f"bikes not a whole number in [0, capacity] at +{MAX_HORIZON} h"),
])
def test_an_impossible_value_is_a_data_error_naming_the_object_line_and_record(record, bikes, capacity, horizon,
                                                                            quantity, value, words):
    other = SMALL if record == BIG else BIG
    lines = [output_line(other, BIG_BIKES if other == BIG else SMALL_BIKES, SENT[other].capacity),
             ",".join([record, *values_with(bikes, capacity, horizon, quantity, value)])]
    with pytest.raises(DataError) as e:
        join(("\n".join(lines) + "\n").encode(), uri="s3://b/out/part-00001.csv.out")
    msg = str(e.value)
    assert msg.startswith(f"s3://b/out/part-00001.csv.out line 2: record '{record}': {words} ("), msg
    assert f"capacity {capacity})" in msg and "nothing was published" in msg


def test_each_row_names_the_fallback_that_served_it_by_the_models_code():
    """Code 0: the model served the horizon (fallback ""); code 1: persistence did; code 2: the
    station's profile (a stale station)."""
    persisted = ",".join([SMALL, *values_with(SMALL_BIKES, 21, 3, "fallback", "1")])
    profiled = ",".join([BIG, *values_with(BIG_BIKES, 35, 5, "fallback", "2")])
    rows = join((profiled + "\n" + persisted + "\n").encode(), DAY_AHEAD).to_pylist()
    named = {(r["station_code"], r["horizon_h"]): r["fallback"] for r in rows}
    assert named.pop(("9020", 3)) == "persistence"
    assert named.pop(("16107", 5)) == "profile"
    assert set(named.values()) == {""}


def test_a_line_of_the_wrong_width_is_a_data_error_naming_the_object_line_and_record():
    short = ",".join([SMALL, *output_values(SMALL_BIKES, 21)[:-1]])
    with pytest.raises(DataError) as e:
        join((output_line(BIG, BIG_BIKES, 35) + "\n" + short + "\n").encode(), uri="s3://b/out/part-00001.csv.out")
    assert str(e.value).startswith(f"s3://b/out/part-00001.csv.out line 2: {len(OUTPUT_COLUMNS) - 1} output values "
                                   f"for '{SMALL}', expected {len(OUTPUT_COLUMNS)}")
    old_contract = f"{BIG},5,6,7\n"  # a model of the three-value contract
    with pytest.raises(DataError, match=rf"o.out line 1: 3 output values for '{BIG}', expected {len(OUTPUT_COLUMNS)}"):
        join(old_contract.encode(), uri="o.out")


def test_lines_out_of_order_are_caught_by_the_smaller_stations_capacity():
    """A bigger station's values on a smaller station's record (an output_fn that reorders its lines)."""
    swapped = (",".join([BIG, *output_values([0], 35)]) + "\n"
               + ",".join([SMALL, *output_values([30], 35)]) + "\n").encode()
    with pytest.raises(DataError, match=rf"line 2: record '{SMALL}': bikes not a whole number .* capacity 21\)"):
        join(swapped)


def test_jsonl_outputs_join_too():
    big = {"record_id": BIG, "SageMakerOutput": [float(v) for v in output_values(BIG_BIKES, 35)]}
    small = {"record_id": SMALL, "SageMakerOutput": dict(zip(OUTPUT_COLUMNS, output_values(SMALL_BIKES, 21)))}
    t = join((json.dumps(big) + "\n" + json.dumps(small) + "\n").encode(), fmt="jsonl")
    assert t.equals(join(GOOD))


def test_publish_replaces_a_date_whole_in_its_products_partition(tmp_path, storage):
    root, d = str(tmp_path), date(2022, 5, 26)
    t = join(GOOD)
    forecasts.publish(storage, root, "evaluation", d, t)
    forecasts.publish(storage, root, "evaluation", d, t)
    forecasts.publish(storage, root, "day-ahead", d, join(GOOD, DAY_AHEAD))
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.parquet")) == [
        "forecasts/product=day-ahead/run_date=2022-05-26/part-0.parquet",
        "forecasts/product=evaluation/run_date=2022-05-26/part-0.parquet"]
    ds = pads.dataset(str(tmp_path / "forecasts"), format="parquet", partitioning="hive")
    assert ds.to_table(filter=pads.field("product") == "evaluation").num_rows == 6
    assert ds.to_table(filter=pads.field("product") == "day-ahead").num_rows == 2 * MAX_HORIZON
    assert forecasts.read_partition(storage, root, "evaluation", d).equals(t)


def test_the_product_is_the_partitions_folder_not_a_column_of_the_object(tmp_path, storage):
    """As run_date: a column of the folder's name would clash with it in pandas, pyarrow and Athena."""
    root, d = str(tmp_path), date(2022, 5, 26)
    uri = forecasts.publish(storage, root, "nowcast", d, join(GOOD, NOWCAST), {"run1": {"run_id": "run1"}})
    raw = pq.read_table(io.BytesIO(storage.read_bytes(uri)))
    assert raw.column_names == [f.name for f in forecasts.SCHEMA if f.name != "product"]
    table, manifests = forecasts.read_partition_manifests(storage, root, "nowcast", d)
    assert table.schema == forecasts.SCHEMA and set(table.column("product").to_pylist()) == {"nowcast"}
    assert manifests == {"run1": {"run_id": "run1"}}


def test_rows_of_another_product_are_refused_and_nothing_is_written(tmp_path, storage):
    root, d = str(tmp_path), date(2022, 5, 26)
    with pytest.raises(DataError, match="rows of product 'evaluation' in the partition of product 'nowcast'"):
        forecasts.publish(storage, root, "nowcast", d, pa.concat_tables([join(GOOD, NOWCAST), join(GOOD)]))
    assert not list(tmp_path.rglob("*.parquet"))


def test_a_json_prediction_too_large_for_a_float_is_a_data_error_naming_its_line():
    values = output_values([5], 35)
    values[0] = "9" * 400  # a JSON integer no float holds
    out = ('{"record_id":"16107@2022-05-25T22:00Z","SageMakerOutput":[' + ",".join(values) + "]}\n").encode()
    with pytest.raises(DataError, match="o.out line 1: "):
        forecasts.join_predictions(SENT, [("o.out", out)], "jsonl", "v", "r", EVALUATION)
