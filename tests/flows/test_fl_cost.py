import re
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

from velibcast.errors import ConfigError
from velibcast.flows import cost

PRICES = cost.load_prices(Path("configs/pricing.yaml"))


def _rows(prices: dict):
    for region, table in prices["regions"].items():
        for name, row in {**table.get("instance_hourly", {}), **table.get("s3", {})}.items():
            yield f"{region} {name}", row


def test_every_shipped_price_names_a_public_aws_page_and_the_day_it_was_read_or_says_unsourced():
    rows = dict(_rows(PRICES))
    assert rows
    for name, row in rows.items():
        assert isinstance(row["price"], (int, float)), name
        if row["source"] == "unsourced":
            assert set(row) == {"price", "source"}, name
        else:
            assert urlparse(row["source"]).scheme == "https", name
            assert urlparse(row["source"]).hostname.endswith("aws.amazon.com"), name
            assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", str(row["read"])), name


@pytest.mark.parametrize("row, why", [
    ({"price": 0.23, "source": "a blog post"}, "an https://...aws.amazon.com page"),
    ({"price": 0.23, "source": "https://aws.amazon.com/sagemaker-ai/pricing/"}, "the date it was read"),
    ({"price": 0.23}, "source"),
])
def test_a_price_without_an_aws_page_and_date_or_unsourced_is_refused_naming_the_row(tmp_path, row, why):
    table = {"version": "2026-12-06", "currency": "USD", "default_region": "us-east-1", "regions": {"us-east-1": {
        "instance_hourly": {"ml.m5.xlarge": row}, "s3": PRICES["regions"]["us-east-1"]["s3"]}}}
    (tmp_path / "pricing.yaml").write_text(yaml.safe_dump(table))
    with pytest.raises(ConfigError, match=rf"us-east-1 ml\.m5\.xlarge.*{re.escape(why)}"):
        cost.load_prices(tmp_path / "pricing.yaml")


def test_an_unsourced_price_is_said_once_plainly_on_the_one_cost_line():
    """The default region, Paris, has no price of its own: the line says whose prices it used and
    that they are unsourced, once, and names no source a user cannot open."""
    e = cost.estimate(PRICES, instance_type="ml.m5.xlarge", instance_count=1, seconds=60, s3_puts=1, s3_gets=1)
    line = cost.summary_line(e)
    assert "\n" not in line and "warning" not in line
    assert line.endswith("(us-east-1 prices, used for eu-west-3: unsourced)")
    assert line.count("unsourced") == 1
    assert e["price_sources"] == {"ml.m5.xlarge": "unsourced", "S3 PUT": "unsourced", "S3 GET": "unsourced"}


def test_a_sourced_price_is_quoted_with_its_aws_page_and_the_day_it_was_read():
    page, s3_page = "https://aws.amazon.com/sagemaker-ai/pricing/", "https://aws.amazon.com/s3/pricing/"
    prices = {"version": "2026-12-06", "currency": "USD", "regions": {"us-east-1": {
        "instance_hourly": {"ml.m5.xlarge": {"price": 0.5, "source": page, "read": "2026-12-06"}},
        "s3": {"put_per_1000": {"price": 0.01, "source": s3_page, "read": "2026-12-05"},
               "get_per_1000": {"price": 0.001, "source": "unsourced"}}}}}
    e = cost.estimate(prices, instance_type="ml.m5.xlarge", instance_count=1, seconds=60, s3_puts=1, s3_gets=1,
                      region="us-east-1")
    assert cost.summary_line(e).endswith(
        f"(us-east-1 prices: ml.m5.xlarge {page} read 2026-12-06; S3 PUT {s3_page} read 2026-12-05; "
        "S3 GET unsourced)")


def test_cost_is_price_times_count_times_billed_time_plus_requests():
    e = cost.estimate(PRICES, instance_type="ml.m5.xlarge", instance_count=2, seconds=1800,
                      s3_puts=1000, s3_gets=1000, region="us-east-1")
    assert e["compute"] == pytest.approx(0.23 * 2 * 0.5)
    assert e["s3_requests"] == pytest.approx(0.005 + 0.0004)


def test_paris_is_priced_with_the_fallback_region_of_the_table():
    e = cost.estimate(PRICES, instance_type="ml.m5.xlarge", instance_count=1, seconds=3600,
                      s3_puts=0, s3_gets=0, region="eu-west-3")
    assert e["priced_with_region"] == "us-east-1" and e["region"] == "eu-west-3"


def test_unpriced_instance_is_a_clear_error():
    with pytest.raises(ConfigError, match="ml.p3.2xlarge"):
        cost.estimate(PRICES, instance_type="ml.p3.2xlarge", instance_count=1, seconds=1, s3_puts=0, s3_gets=0)


def test_a_local_run_is_priced_as_sagemaker_and_says_so_with_formula_and_sources():
    e = cost.estimate(PRICES, instance_type="ml.m5.xlarge", instance_count=1, seconds=360,
                      s3_puts=10, s3_gets=20, region="us-east-1", backend="local")
    assert e["what"].startswith("estimated cost on SageMaker") and "nothing was billed on AWS" in e["what"]
    assert e["computation"] == "0.23 x 1 x 360.0 s / 3600 + 10 PUT x 0.005/1000 + 20 GET x 0.0004/1000 = 0.023058 USD"
    assert e["price_table_date"] == PRICES["version"]
    assert cost.summary_line(e) == (f"{e['what']}: 0.0231 USD = 0.23 x 1 x 360.0 s / 3600 + 10 PUT x 0.005/1000 + "
                                    "20 GET x 0.0004/1000 (us-east-1 prices: unsourced)")
