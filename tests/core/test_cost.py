from pathlib import Path

import pytest

from velibcast import cost
from velibcast.errors import ConfigError

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
