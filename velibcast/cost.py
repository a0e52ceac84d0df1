"""What a run costs (or would cost) on SageMaker, from billed time and a sourced price table."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import yaml

from velibcast.errors import ConfigError


def load_prices(path: Path) -> dict:
    return yaml.safe_load(Path(path).read_text())


def _region_table(prices: dict, region: str) -> tuple[dict, str]:
    regions = prices["regions"]
    if region not in regions:
        raise ConfigError(f"pricing table has no region {region!r}; add it to configs/pricing.yaml")
    table = regions[region]
    if "fallback_region" in table:
        fb = table["fallback_region"]
        return regions[fb], fb
    return table, region


def billed_seconds(start: datetime | str, end: datetime | str) -> float:
    if isinstance(start, str):
        start = datetime.fromisoformat(start)
    if isinstance(end, str):
        end = datetime.fromisoformat(end)
    return max(0.0, (end - start).total_seconds())


def estimate(prices: dict, *, instance_type: str, instance_count: int, seconds: float,
             s3_puts: int, s3_gets: int, region: str | None = None) -> dict:
    region = region or prices.get("default_region", "us-east-1")
    table, priced_region = _region_table(prices, region)
    hourly = table["instance_hourly"].get(instance_type)
    if hourly is None:
        raise ConfigError(
            f"no price for {instance_type} in configs/pricing.yaml ({priced_region}); "
            f"add it with its source, or use one of {sorted(table['instance_hourly'])}"
        )
    compute = hourly["price"] * instance_count * seconds / 3600.0
    requests = (s3_puts / 1000.0) * table["s3"]["put_per_1000"]["price"] + \
               (s3_gets / 1000.0) * table["s3"]["get_per_1000"]["price"]
    return {
        "currency": prices.get("currency", "USD"),
        "total": round(compute + requests, 6),
        "compute": round(compute, 6),
        "s3_requests": round(requests, 6),
        "formula": "hourly_price x instance_count x billed_seconds / 3600 + S3 requests",
        "instance_type": instance_type,
        "instance_count": instance_count,
        "billed_seconds": round(seconds, 3),
        "hourly_price": hourly["price"],
        "hourly_price_source": hourly["source"],
        "s3_puts": s3_puts,
        "s3_gets": s3_gets,
        "region": region,
        "priced_with_region": priced_region,
        "price_table_version": prices.get("version"),
    }
