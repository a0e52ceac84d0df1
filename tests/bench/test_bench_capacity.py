"""bench/capacity's plan: what it derives from its measurements, checked on given measurements."""

import importlib.util
from pathlib import Path

import pytest

from velibcast.flows import cost

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture
def capacity(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))  # the bench imports its sibling bench_results
    spec = importlib.util.spec_from_file_location("bench_capacity", BENCH / "capacity.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def measurement(windows_1500=1_500, windows_15000=15_000):
    def window(windows, wall, peak):
        return {"wall_s": wall, "peak_rss_mb_max": peak, "windows": windows}

    def server(load, peak):
        return {"cpu_s": 2.0, "records": 1_000, "load_s": load, "peak_rss_mb_max": peak, "output_bytes": 500_000}

    return {"window_1500": window(windows_1500, 0.1, 120.0), "window_15000": window(windows_15000, 1.0, 220.0),
            "server_1500": server(0.2, 100.0), "server_15000": server(2.0, 200.0)}


def test_measured_sizes_carry_their_measurements_and_150000_stations_lie_on_their_line(capacity):
    rows = {(r["stations"], r["instances"]): r for r in capacity.plan(measurement())["rows"]}
    assert rows[(15_000, 1)]["measured"] and rows[(15_000, 1)]["window_peak_mb"] == 220.0
    big = rows[(150_000, 1)]
    assert not big["measured"]
    assert big["windows"] == 150_000
    assert big["window_peak_mb"] == pytest.approx(120 + 100 * (150_000 - 1_500) / 13_500)
    assert big["server_peak_mb"] == pytest.approx(100 + 100 * (150_000 - 1_500) / 13_500)


def test_instances_split_the_records_but_each_bills_its_start_and_the_model_load(capacity):
    rows = {(r["stations"], r["instances"]): r for r in capacity.plan(measurement())["rows"]}
    one, sixteen = rows[(15_000, 1)], rows[(15_000, 16)]
    # 15,000 records at 2 ms of CPU each, over the instance's cores
    cores = min(capacity.ASSUMPTIONS["instance_cores"], capacity.ASSUMPTIONS["max_concurrent_transforms"])
    assert one["processing_s"] == pytest.approx(15_000 * 0.002 / cores)
    assert sixteen["processing_s"] == pytest.approx(one["processing_s"] / 16)
    fixed = capacity.ASSUMPTIONS["container_start_s"] + 2.0
    assert sixteen["billed_s"] == pytest.approx(fixed + sixteen["processing_s"])
    assert sixteen["cost_per_run_usd"] > one["cost_per_run_usd"]


def test_a_run_costs_what_flows_cost_says_and_a_nowcast_day_is_24_runs_a_night_one(capacity):
    row = next(r for r in capacity.plan(measurement())["rows"] if r["stations"] == 1_500 and r["instances"] == 4)
    prices = cost.load_prices(capacity.REPO / "configs" / "pricing.yaml")
    e = cost.estimate(prices, instance_type=capacity.ASSUMPTIONS["instance_type"], instance_count=4,
                      seconds=row["billed_s"], s3_puts=2 * row["shards"] + 2, s3_gets=4 + 2 * row["shards"],
                      region=capacity.ASSUMPTIONS["region"])
    assert row["cost_per_run_usd"] == e["total"] > 0
    assert row["cost_day-ahead_usd"] == e["total"]
    assert row["cost_nowcast_usd"] == pytest.approx(24 * e["total"])
