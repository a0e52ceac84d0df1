"""What a run costs (or would cost) on SageMaker, from billed time and a sourced price table."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlparse

import yaml

from velibcast.errors import ConfigError

UNSOURCED = "unsourced"
_SOURCE_HELP = ("name the public AWS page it was read on (an https://...aws.amazon.com page) and the date it was "
                f"read (read: YYYY-MM-DD), or write source: {UNSOURCED}")


def load_prices(path: Path) -> dict:
    """The price table; every price a user can check on an AWS page, or plainly unsourced."""
    prices = yaml.safe_load(Path(path).read_text())
    for region, table in prices["regions"].items():
        for name, row in {**table.get("instance_hourly", {}), **table.get("s3", {})}.items():
            _check_source(f"{path}: {region} {name}", row)
    return prices


def _check_source(where: str, row: dict) -> None:
    source = row.get("source")
    if source == UNSOURCED:
        return
    if source is None:
        raise ConfigError(f"{where}: no source; {_SOURCE_HELP}")
    url = urlparse(str(source))
    host = url.hostname or ""
    if url.scheme != "https" or not (host == "aws.amazon.com" or host.endswith(".aws.amazon.com")):
        raise ConfigError(f"{where}: source {source!r} is not an https://...aws.amazon.com page; {_SOURCE_HELP}")
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", str(row.get("read"))):  # YAML reads a bare date as a date
        raise ConfigError(f"{where}: {source} needs the date it was read (read: YYYY-MM-DD)")


def _source(row: dict) -> str | dict:
    if row["source"] == UNSOURCED:
        return UNSOURCED
    return {"url": row["source"], "read": str(row["read"])}


def _prices_note(priced_region: str, region: str, sources: dict) -> str:
    """Whose prices and where each was read, in one clause: "unsourced" is said once when no price has a source."""
    whose = f"{priced_region} prices" + ("" if priced_region == region else f", used for {region}")
    if all(s == UNSOURCED for s in sources.values()):
        return f"{whose}: {UNSOURCED}"
    return whose + ": " + "; ".join(f"{name} {UNSOURCED}" if s == UNSOURCED else f"{name} {s['url']} read {s['read']}"
                                    for name, s in sources.items())


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
            f"add it with the AWS page and date it was read (or source: {UNSOURCED}), "
            f"or use one of {sorted(table['instance_hourly'])}"
        )
    compute = hourly["price"] * instance_count * seconds / 3600.0
    put, get = table["s3"]["put_per_1000"], table["s3"]["get_per_1000"]
    requests = (s3_puts / 1000.0) * put["price"] + (s3_gets / 1000.0) * get["price"]
    total = round(compute + requests, 6)
    local = backend == "local"
    sources = {instance_type: _source(hourly), "S3 PUT": _source(put), "S3 GET": _source(get)}
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
        "price_sources": sources,
        "prices_note": _prices_note(priced_region, region, sources),
        "price_table": "configs/pricing.yaml",
        "price_table_date": prices.get("version"),
        "instance_type": instance_type,
        "instance_count": instance_count,
        "billed_seconds": round(seconds, 3),
        "hourly_price": hourly["price"],
        "s3_puts": s3_puts,
        "s3_gets": s3_gets,
        "region": region,
        "priced_with_region": priced_region,
        "price_table_version": prices.get("version"),
    }


def summary_line(e: dict) -> str:
    """One line for the console: what the figure is, the figure, where its prices were read."""
    return (f"{e['what']}: {e['total']:.4f} {e['currency']} = {e['computation'].rsplit(' = ', 1)[0]} "
            f"({e['prices_note']})")
