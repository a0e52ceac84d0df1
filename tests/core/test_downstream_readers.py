"""The forecast dataset as downstream readers see it: pandas, pyarrow.dataset, DuckDB and polars,
on local paths and on S3 (moto server), including while a date is being republished. The tests
read it as docs/forecast-dataset.md tells users to."""

import threading
from datetime import date, datetime, timedelta

import duckdb
import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.compute
import pyarrow.dataset as pads
import pyarrow.fs as pafs
import pytest

from tests.helpers import output_line
from velibcast import storage as st
from velibcast.flows import forecasts
from velibcast.flows.products import DAY_AHEAD, EVALUATION, Product
from velibcast.timeutil import UTC, iso_minute
from velibcast.transform_code.velib_features import MAX_HORIZON

D1, D2 = date(2022, 5, 25), date(2022, 5, 26)
# what the docs give readers: both partition keys typed, so every reader agrees on them
HIVE = pads.partitioning(pa.schema([("product", pa.string()), ("run_date", pa.date32())]), flavor="hive")
KEY = ["product", "station_code", "origin_ts", "horizon_h"]
# rows published by publish_two_dates, by (product, run_date)
ROWS = {("evaluation", "2022-05-25"): 3 * 4 * 3, ("evaluation", "2022-05-26"): 2 * 4 * 3,
        ("day-ahead", "2022-05-26"): 3 * MAX_HORIZON}


def night(run_date: date, run_id: str, stations=("16107", "9020", "4006"), origins=4, offset=0,
          product: Product = EVALUATION) -> pa.Table:
    first = datetime(run_date.year, run_date.month, run_date.day, tzinfo=UTC) - timedelta(hours=2)
    sent, lines = {}, []
    for code in stations:
        for k in range(origins):
            t = first + timedelta(hours=k)
            rid = f"{code}@{iso_minute(t)}"
            sent[rid] = forecasts.SentRecord(code, t, 30, code == "4006")
            lines.append(output_line(rid, [min(30, k + offset + h) for h in range(MAX_HORIZON)], 30))
    return forecasts.join_predictions(sent, [("o.out", "\n".join(lines).encode())], "csv", "gbm-1", run_id, product)


def publish_two_dates(storage, root):
    forecasts.publish(storage, root, "evaluation", D1, night(D1, "run-d1"))
    forecasts.publish(storage, root, "evaluation", D2, night(D2, "run-d2-a"))
    # a rerun of D2 replaces it whole: fewer stations, another run
    forecasts.publish(storage, root, "evaluation", D2, night(D2, "run-d2-b", stations=("16107", "9020"), offset=10))
    # the day-ahead product of the same date is a partition of its own: one origin, 24 horizons
    forecasts.publish(storage, root, "day-ahead", D2, night(D2, "run-da", origins=1, product=DAY_AHEAD))


def s3_filesystem(endpoint: str | None) -> pafs.S3FileSystem:
    if endpoint is None:
        raise ValueError("an s3:// store in these tests is moto's: give its endpoint")
    scheme, host = endpoint.split("://")
    return pafs.S3FileSystem(endpoint_override=host, scheme=scheme, region="eu-west-3",
                             access_key="testing", secret_key="testing")


def dataset_of(root: str, endpoint: str | None = None) -> pads.Dataset:
    """How a reader opens the dataset: the `forecasts/` folder, Hive partitioning on run_date."""
    path = st.join(root, "forecasts")
    if st.is_s3(root):
        return pads.dataset(path.removeprefix("s3://"), filesystem=s3_filesystem(endpoint),
                            format="parquet", partitioning=HIVE)
    return pads.dataset(path, format="parquet", partitioning=HIVE)


def check_types(schema: pa.Schema):
    """The columns a reader gets: the objects' (forecasts.SCHEMA) and the two partition keys."""
    assert [(f.name, f.type) for f in schema] == [(f.name, f.type) for f in forecasts.SCHEMA if f.name != "product"] + [
        ("product", pa.string()), ("run_date", pa.date32())]


def check_content(df: pd.DataFrame):
    """One run per partition (the rerun's), no key twice, the distribution's columns possible."""
    df = df.assign(product=df["product"].astype(str), run_date=df["run_date"].astype(str))
    assert not df.duplicated(KEY).any()
    assert df.groupby(["product", "run_date"]).size().to_dict() == ROWS
    runs = df.groupby(["product", "run_date"])["run_id"].unique().to_dict()
    assert {k: list(v) for k, v in runs.items()} == {("evaluation", "2022-05-25"): ["run-d1"],
                                                     ("evaluation", "2022-05-26"): ["run-d2-b"],
                                                     ("day-ahead", "2022-05-26"): ["run-da"]}
    assert (df["horizon_h"] <= df["product"].map({"evaluation": 3, "day-ahead": MAX_HORIZON})).all()
    assert ((0 <= df["bikes_p10"]) & (df["bikes_p10"] <= df["bikes_p50"]) & (df["bikes_p50"] <= df["bikes_p90"])
            & (df["bikes_p90"] <= df["capacity"])).all()
    assert df[["p_empty", "p_full"]].stack().between(0, 1).all() and (df["fallback"] == "").all()


@pytest.fixture
def endpoint(request):
    return request.getfixturevalue("aws_env") if "s3" in request.node.callspec.id else None


def test_pyarrow_dataset_reads_types_and_one_run_per_date(any_root, storage, endpoint):
    publish_two_dates(storage, any_root)
    ds = dataset_of(any_root, endpoint)
    check_types(ds.schema)
    table = ds.to_table()
    check_content(table.to_pandas())
    d2 = ds.to_table(filter=(pads.field("product") == "evaluation") & (pads.field("run_date") == D2))
    assert d2.num_rows == 24 and set(d2.column("run_id").to_pylist()) == {"run-d2-b"}


def test_pandas_reads_the_dataset(any_root, storage, endpoint):
    publish_two_dates(storage, any_root)
    path = st.join(any_root, "forecasts")
    # with no partitioning given (pandas infers both keys from the folders), and with the typed keys
    fs = {"filesystem": s3_filesystem(endpoint)} if endpoint else {}
    path = path.removeprefix("s3://")
    for df in (pd.read_parquet(path, **fs), pd.read_parquet(path, partitioning=HIVE, **fs)):
        assert df["station_code"].map(type).eq(str).all()
        assert str(df["origin_ts"].dtype) == "datetime64[us, UTC]"
        assert df["horizon_h"].dtype == "int8" and df["bikes_pred"].dtype == df["bikes_p90"].dtype == "int32"
        assert df["p_empty"].dtype == df["p_full"].dtype == "float32"
        check_content(df)
    day_ahead = pd.read_parquet(path, filters=[("product", "=", "day-ahead")], **fs)
    assert len(day_ahead) == ROWS["day-ahead", "2022-05-26"] and set(day_ahead["run_id"]) == {"run-da"}


def test_duckdb_reads_the_dataset(any_root, storage, endpoint):
    publish_two_dates(storage, any_root)
    con = duckdb.connect()
    # DuckDB scans a pyarrow dataset object in place (its S3 extension is not needed).
    ds = dataset_of(any_root, endpoint)
    con.register("forecasts", ds)
    check_duckdb_types(con, "forecasts")
    by_partition = ("select product, run_date, count(*), count(distinct run_id), "
                    "count(*) - count(distinct (station_code, origin_ts, horizon_h)) "
                    "from {} group by product, run_date order by product, run_date")
    expected = [("day-ahead", D2, 3 * MAX_HORIZON, 1, 0), ("evaluation", D1, 36, 1, 0), ("evaluation", D2, 24, 1, 0)]
    assert con.sql(by_partition.format("forecasts")).fetchall() == expected
    if endpoint is None:
        # Locally DuckDB globs the files itself; `part-0.parquet` keeps in-flight temp files out.
        for glob in (st.join(any_root, "forecasts", "*", "*", forecasts.PART_NAME),
                     st.join(any_root, "forecasts", "**", forecasts.PART_NAME)):
            scan = f"read_parquet('{glob}', hive_partitioning = true)"
            check_duckdb_types(con, scan)
            assert con.sql(by_partition.format(scan)).fetchall() == expected
            n = con.sql(f"select count(*) from {scan} "
                        f"where product = 'evaluation' and run_date = DATE '{D2}'").fetchall()[0][0]
            assert n == 24


def check_duckdb_types(con, relation: str):
    types = dict(con.sql(f"select column_name, column_type from (describe select * from {relation})").fetchall())
    assert types["station_code"] == "VARCHAR" and types["origin_ts"] == "TIMESTAMP WITH TIME ZONE"
    assert types["horizon_h"] == "TINYINT" and types["bikes_pred"] == types["bikes_p10"] == "INTEGER"
    assert types["p_empty"] == "FLOAT" and types["fallback"] == types["product"] == "VARCHAR"
    assert types["run_date"] == "DATE"


def test_polars_reads_the_dataset(any_root, storage, endpoint):
    publish_two_dates(storage, any_root)
    glob = st.join(any_root, "forecasts", "**", forecasts.PART_NAME)
    options = ({"aws_endpoint_url": endpoint, "aws_region": "eu-west-3", "aws_access_key_id": "testing",
                "aws_secret_access_key": "testing", "aws_allow_http": "true"} if endpoint else None)
    lf = pl.scan_parquet(glob, hive_partitioning=True, storage_options=options)
    schema = lf.collect_schema()
    assert schema["station_code"] == pl.String and schema["origin_ts"] == pl.Datetime("us", "UTC")
    assert schema["horizon_h"] == pl.Int8 and schema["bikes_p50"] == pl.Int32 and schema["p_full"] == pl.Float32
    assert schema["product"] == pl.String and schema["run_date"] == pl.Date
    check_content(lf.collect().to_pandas())
    day_ahead = lf.filter((pl.col("product") == "day-ahead") & (pl.col("run_date") == D2)).collect()
    assert day_ahead.height == 3 * MAX_HORIZON and day_ahead["horizon_h"].max() == MAX_HORIZON


def test_a_temporary_file_left_by_a_killed_writer_is_not_counted_by_duckdb_or_polars_globs(tmp_path, storage):
    """The query users type is a `**` glob of the dataset. A writer killed between writing its
    temporary file and renaming it leaves that file, whole, where it wrote it: no glob of the
    dataset's Parquet objects may count its rows."""
    root = str(tmp_path / "root")
    publish_two_dates(storage, root)
    target = tmp_path / "root" / "forecasts" / "product=evaluation" / "run_date=2022-05-26" / forecasts.PART_NAME
    left = st._write_temp(target, target.read_bytes())  # what the writer had done when it was killed
    assert left.exists()
    glob = st.join(root, "forecasts", "**", "*.parquet")
    duck = duckdb.sql(f"select run_date, count(*) from read_parquet('{glob}', hive_partitioning = true) "
                      "group by run_date order by run_date").fetchall()
    # D2: the evaluation rerun's 24 rows and the day-ahead's 72 (3 stations x 24 horizons); the
    # temporary copy of the evaluation object would add 24
    assert duck == [(D1, 36), (D2, 24 + 72)]
    lazy = pl.scan_parquet(glob, hive_partitioning=True)
    assert lazy.select(pl.len()).collect().item() == 36 + 24 + 72


def big_night(run_id: str, seed: int, n_stations: int = 1500) -> pa.Table:
    """A night of real size (> 64 KiB, so ranged readers need several GETs), random predictions."""
    rng = np.random.default_rng(seed)
    n = n_stations * 24 * 3
    origins = [datetime(2022, 5, 25, 22, tzinfo=UTC) + timedelta(hours=k) for k in range(24)]
    origin = pa.array(np.repeat(np.tile(np.array(origins, dtype=object), n_stations), 3), pa.timestamp("us", tz="UTC"))
    horizon = np.tile([1, 2, 3], n // 3)
    bikes = rng.integers(0, 40, n)
    return pa.table({
        "station_code": np.repeat([str(10000 + i) for i in range(n_stations)], 72),
        "origin_ts": origin, "horizon_h": pa.array(horizon, pa.int8()),
        "target_ts": pa.compute.add(origin, pa.array((horizon * 3_600_000_000).astype("int64"), pa.duration("us"))),
        "bikes_pred": pa.array(bikes, pa.int32()), "bikes_p10": pa.array(np.maximum(bikes - 3, 0), pa.int32()),
        "bikes_p50": pa.array(bikes, pa.int32()), "bikes_p90": pa.array(np.minimum(bikes + 3, 40), pa.int32()),
        "p_empty": pa.array(rng.random(n), pa.float32()), "p_full": pa.array(rng.random(n), pa.float32()),
        "capacity": pa.array(np.full(n, 40), pa.int32()), "unknown_station": np.zeros(n, bool),
        "fallback": np.full(n, ""), "product": np.full(n, "evaluation"), "model_version": np.full(n, "gbm-1"),
        "run_id": np.full(n, run_id),
    }, schema=forecasts.SCHEMA)


def whole_object_read(storage, root) -> pa.Table:
    """A reader that GETs each listed object whole: S3 serves it from one version."""
    import io

    import pyarrow.parquet as pq

    parts = [o.uri for o in storage.list(st.join(root, "forecasts") + "/")
             if o.uri.endswith("/" + forecasts.PART_NAME) and "product=evaluation/run_date=2022-05-26" in o.uri]
    return pa.concat_tables([pq.read_table(io.BytesIO(storage.read_bytes(u))) for u in parts])


def test_readers_never_see_a_partial_or_doubled_date_while_it_is_republished(any_root, storage, endpoint):
    """A writer republishes D2 alternately by two runs of different content and size, while
    readers list and read the dataset. A read that succeeds shows exactly one whole run for
    the date. Locally every read succeeds (rename is atomic, an open file keeps its bytes).
    On S3 a reader that reads an object by ranges (pyarrow's S3 filesystem, DuckDB over it,
    Athena) can straddle two versions if the object is replaced between its GETs: it then
    fails on the Parquet footer or a page header - an error to retry, never mixed rows -
    while a reader that GETs each object whole always succeeds."""
    versions = {"run-a": big_night("run-a", 1), "run-b": big_night("run-b", 2, n_stations=1400)}
    preds = {k: v.column("bikes_pred") for k, v in versions.items()}
    forecasts.publish(storage, any_root, "evaluation", D1, night(D1, "run-d1"))
    forecasts.publish(storage, any_root, "evaluation", D2, versions["run-a"])
    done = threading.Event()
    errors = []

    def writer():
        try:
            for i in range(20):
                forecasts.publish(storage, any_root, "evaluation", D2, versions[("run-b", "run-a")[i % 2]])
        except Exception as e:  # surfaced by the main thread
            errors.append(e)
        finally:
            done.set()

    def check(table: pa.Table):
        ids = set(table.column("run_id").to_pylist())
        assert len(ids) == 1, f"date {D2} shows several runs at once: {ids}"
        run_id = ids.pop()
        assert table.num_rows == versions[run_id].num_rows
        assert table.column("bikes_pred").equals(preds[run_id]), "rows of two versions mixed"
        return run_id

    con = duckdb.connect()
    ok = failed = after = 0
    thread = threading.Thread(target=writer)
    thread.start()
    try:
        # once the writer is done the object is stable: 3 good reads come within a few tries, or the test fails
        while not done.is_set() or (ok < 3 and after < 20):
            after += done.is_set()
            ds = dataset_of(any_root, endpoint)  # listing again each time, as a new reader would
            try:
                con.register("f", ds)
                table = con.sql(f"select * exclude (product, run_date) from f "
                                f"where product = 'evaluation' and run_date = DATE '{D2}'").arrow()
                table = table.read_all() if hasattr(table, "read_all") else table
                check(table.sort_by([("station_code", "ascending"), ("origin_ts", "ascending"), ("horizon_h", "ascending")]))
                ok += 1
            except (duckdb.Error, OSError, pa.ArrowInvalid) as e:
                if endpoint is None:
                    raise
                assert "parquet" in str(e).lower() or "thrift" in str(e).lower() or "stream" in str(e).lower(), e
                failed += 1
            if endpoint is not None:
                check(whole_object_read(storage, any_root))
    finally:
        thread.join()
    assert not errors, errors
    assert ok >= 3
    con.register("f", dataset_of(any_root, endpoint))
    assert con.sql("select count(*) - count(distinct (product, station_code, origin_ts, horizon_h)) from f").fetchall() == [(0,)]
