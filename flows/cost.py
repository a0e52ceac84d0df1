"""What a run costs (or would cost) on SageMaker, from billed time and a sourced price table."""

from __future__ import annotations

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


def estimate(prices: dict, *, instance_type: str, instance_count: int, seconds: float,
             s3_puts: int, s3_gets: int, region: str | None = None, backend: str = "sagemaker") -> dict:
    """What the job costs on SageMaker. For a local run (backend "local") it is what the same job
    would cost there: the local runtime itself bills nothing on AWS, and the estimate says so."""
    region = region or prices.get("default_region", "us-east-1")
    table, priced_region = _region_table(prices, region)
    hourly = table["instance_hourly"].get(instance_type)
    if hourly is None:
        raise ConfigError(
            f"no price for {instance_type} in configs/pricing.yaml ({priced_region}); "
            f"add it with its source, or use one of {sorted(table['instance_hourly'])}"
        )
    compute = hourly["price"] * instance_count * seconds / 3600.0
    put, get = table["s3"]["put_per_1000"], table["s3"]["get_per_1000"]
    requests = (s3_puts / 1000.0) * put["price"] + (s3_gets / 1000.0) * get["price"]
    total = round(compute + requests, 6)
    local = backend == "local"
    region_note = None if priced_region == region else (
        f"no sourced price for {region}; priced with {priced_region} prices (configs/pricing.yaml)")
    currency = prices.get("currency", "USD")
    price_note = (f"the {instance_type} price ({hourly['price']} {currency}/h) is unsourced "
                  f"({hourly['source']}): the figure is a guess until configs/pricing.yaml cites a source"
                  if hourly.get("unsourced") else None)
    return {
        "what": "estimated cost on SageMaker" + (" of the same job (this run used the local runtime: "
                                                  "nothing was billed on AWS)" if local else ""),
        "currency": prices.get("currency", "USD"),
        "total": total,
        "compute": round(compute, 6),
        "s3_requests": round(requests, 6),
        "formula": "hourly_price x instance_count x billed_seconds / 3600 + S3 requests",
        "computation": (f"{hourly['price']} x {instance_count} x {seconds:.1f} s / 3600 + {s3_puts} PUT x "
                        f"{put['price']}/1000 + {s3_gets} GET x {get['price']}/1000 = {total:.6f} "
                        f"{prices.get('currency', 'USD')}"),
        "billed_seconds_source": ("the local job's start and end times, as SageMaker would bill them "
                                  "(TransformEndTime - TransformStartTime)" if local else
                                  "DescribeTransformJob TransformEndTime - TransformStartTime"),
        "s3_price_sources": {"put_per_1000": put["source"], "get_per_1000": get["source"]},
        "price_table": "configs/pricing.yaml",
        "price_table_date": prices.get("version"),
        "region_note": region_note,
        "price_note": price_note,
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


def summary_line(e: dict) -> str:
    """One line for the console: what the figure is, the figure, where the price comes from."""
    line = (f"{e['what']}: {e['total']:.4f} {e['currency']} = {e['computation'].rsplit(' = ', 1)[0]} "
            f"({e['instance_type']} in {e['priced_with_region']}: {e['hourly_price_source']}; "
            f"table of {e['price_table_date']})")
    for note in ("region_note", "price_note"):
        if e.get(note):
            line += f"\nprice warning: {e[note]}"
    return line
