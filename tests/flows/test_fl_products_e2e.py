"""The day-ahead and nowcast products end to end: a forecast as of a time reads nothing captured
after it, covers the open stations, and keeps its product's horizons."""

from datetime import datetime

from velibcast import storage as st
from velibcast.flows import forecasts
from velibcast.flows.nightly import forecast
from velibcast.flows.products import DAY_AHEAD, NOWCAST
from velibcast.timeutil import UTC

AS_OF = datetime(2022, 5, 26, 6, 20, tzinfo=UTC)


def _capture_time(uri: str) -> datetime:
    return datetime.strptime(uri.rsplit("/", 1)[1][:20], "%Y-%m-%dT%H-%M-%SZ").replace(tzinfo=UTC)


def _cut_at(storage, root, as_of) -> int:
    """Delete the captures taken after `as_of`; how many there were."""
    later = [o.uri for o in storage.list(st.join(root, "velib", "snapshots") + "/") if _capture_time(o.uri) > as_of]
    for uri in later:
        storage.delete(uri)
    return len(later)


def test_a_day_ahead_forecast_is_the_same_from_a_store_with_later_captures_as_from_one_cut_at_as_of(
        tmp_path, storage, trained_model, e2e):
    full, cut = str(tmp_path / "full"), str(tmp_path / "cut")
    e2e.copy_snapshots(storage, full)
    e2e.copy_snapshots(storage, cut)
    assert _cut_at(storage, cut, AS_OF) > 0, "the full store must hold captures after as_of"
    res = {}
    for name, root in (("full", full), ("cut", cut)):
        res[name] = forecast(product="day-ahead", as_of=AS_OF, config=e2e.config(tmp_path, root, trained_model["model_uri"]))
    origin = datetime(2022, 5, 26, 6, tzinfo=UTC)  # the latest whole hour with a capture at or before 06:20Z
    tables = {}
    for name, root in (("full", full), ("cut", cut)):
        table = forecasts.read_partition(storage, root, DAY_AHEAD.name, origin.date())
        assert set(table.column("origin_ts").to_pylist()) == {origin}
        assert sorted(set(table.column("horizon_h").to_pylist())) == list(DAY_AHEAD.horizons)
        tables[name] = table.drop_columns(["run_id"])  # the run id holds the config's hash, hence its root
    assert tables["full"].equals(tables["cut"])
    assert res["full"]["counts"]["coverage"] >= 0.99


def test_a_nowcast_keeps_three_horizons_and_says_its_coverage(tmp_path, storage, trained_model, e2e):
    root = str(tmp_path / "root")
    e2e.copy_snapshots(storage, root)
    res = forecast(product="nowcast", as_of=AS_OF, config=e2e.config(tmp_path, root, trained_model["model_uri"]))
    c = res["counts"]
    assert c["forecast_rows"] == len(NOWCAST.horizons) * c["windows_emitted"]
    assert c["coverage"] == round(c["windows_emitted"] / c["station_origins_open"], 4) >= 0.99
    assert res["forecast_parquet"] == forecasts.partition_uri(root, NOWCAST.name, AS_OF.date())
    table = forecasts.read_partition(storage, root, NOWCAST.name, AS_OF.date())
    assert sorted(set(table.column("horizon_h").to_pylist())) == [1, 2, 3]
    assert set(table.column("product").to_pylist()) == {"nowcast"}
    # The test model trained on Monday to Wednesday only, and 2022-05-26 (Ascension) is a non-working
    # day: persistence serves every horizon, and each row says so.
    assert set(table.column("fallback").to_pylist()) == {"persistence"}
    # an hourly nowcast draws no report PNG (the day-ahead run does), and says so
    assert res["report_png"] is None and not list((tmp_path / "root" / "runs").glob("*/report.png"))
