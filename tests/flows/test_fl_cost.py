from pathlib import Path

import pytest

from velibcast.errors import ConfigError
from velibcast.flows import cost

PRICES = cost.load_prices(Path("configs/pricing.yaml"))


def test_cost_is_price_times_count_times_billed_time_plus_requests():
    e = cost.estimate(PRICES, instance_type="ml.m5.xlarge", instance_count=2, seconds=1800,
                      s3_puts=1000, s3_gets=1000, region="us-east-1")
    assert e["compute"] == pytest.approx(0.23 * 2 * 0.5)
    assert e["s3_requests"] == pytest.approx(0.005 + 0.0004)
    assert "JHUAPL" in PRICES["regions"]["us-east-1"]["instance_hourly"]["ml.m5.large"]["source"]


def test_paris_falls_back_to_a_priced_region_and_says_so():
    e = cost.estimate(PRICES, instance_type="ml.m5.xlarge", instance_count=1, seconds=3600,
                      s3_puts=0, s3_gets=0, region="eu-west-3")
    assert e["priced_with_region"] == "us-east-1"


def test_unpriced_instance_is_a_clear_error():
    with pytest.raises(ConfigError, match="ml.p3.2xlarge"):
        cost.estimate(PRICES, instance_type="ml.p3.2xlarge", instance_count=1, seconds=1, s3_puts=0, s3_gets=0)


def test_a_local_run_is_priced_as_sagemaker_and_says_so_with_formula_source_and_date():
    e = cost.estimate(PRICES, instance_type="ml.m5.xlarge", instance_count=1, seconds=360,
                      s3_puts=10, s3_gets=20, region="us-east-1", backend="local")
    assert e["what"].startswith("estimated cost on SageMaker") and "nothing was billed on AWS" in e["what"]
    assert e["computation"] == "0.23 x 1 x 360.0 s / 3600 + 10 PUT x 0.005/1000 + 20 GET x 0.0004/1000 = 0.023058 USD"
    assert e["price_table_date"] == PRICES["version"] and e["hourly_price_source"] and e["region_note"] is None
    line = cost.summary_line(e)
    assert line.startswith("estimated cost on SageMaker") and PRICES["version"] in line and "JHUAPL" not in line
    assert "LLM-gateway" in line  # the source of the ml.m5.xlarge price


def test_a_region_without_a_sourced_price_says_so_in_the_console_line():
    e = cost.estimate(PRICES, instance_type="ml.m5.xlarge", instance_count=1, seconds=60, s3_puts=0, s3_gets=0,
                      region="eu-west-3")
    assert e["region_note"] == "no sourced price for eu-west-3; priced with us-east-1 prices (configs/pricing.yaml)"
    assert cost.summary_line(e).splitlines()[-1] == "price warning: " + e["region_note"]


def test_an_unsourced_instance_price_says_so_in_the_console_line():
    table = PRICES["regions"]["us-east-1"]["instance_hourly"]
    unsourced = sorted(k for k, v in table.items() if v.get("unsourced"))
    assert unsourced == ["ml.m5.4xlarge"]
    # a row is either flagged or names a source: "UNVERIFIED" text alone is not enough for the CLI to warn
    assert not [k for k, v in table.items() if not v.get("unsourced") and "UNVERIFIED" in v["source"].upper()]
    e = cost.estimate(PRICES, instance_type="ml.m5.4xlarge", instance_count=1, seconds=60, s3_puts=0, s3_gets=0,
                      region="us-east-1")
    assert e["price_note"].startswith("the ml.m5.4xlarge price (0.922 USD/h) is unsourced")
    assert cost.summary_line(e).splitlines()[-1] == "price warning: " + e["price_note"]
    sourced = cost.estimate(PRICES, instance_type="ml.m5.xlarge", instance_count=1, seconds=60, s3_puts=0,
                            s3_gets=0, region="us-east-1")
    assert sourced["price_note"] is None and "price warning" not in cost.summary_line(sourced)
