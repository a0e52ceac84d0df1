"""The three forecast products: what each forecasts, from which origins, at which horizons.

One pipeline serves them all (windows -> Batch Transform -> join -> publish); a product
only chooses the origins and the horizons kept from the model's output:

- `day-ahead`: one origin, the latest whole hour with data at the run's as-of time,
  horizons 1..24. Operators plan the next day's truck routes and stock levels from it;
  the nightly deployment runs it.
- `nowcast`: the same origin, horizons 1..3, for riders and apps; an hourly deployment.
- `evaluation`: every hourly origin of a past Europe/Paris day (or an origin range),
  horizons 1..3: the per-origin backtest the nightly run used to publish, kept for
  evaluation and backfills. Its targets are in the past by design.

Each product is its own partition of the forecast dataset
(`forecasts/product=<name>/run_date=D/part-0.parquet`) and every row names its product.
"""

from __future__ import annotations

from dataclasses import dataclass

from velibcast.errors import ConfigError
from velibcast.transform_code.velib_features import MAX_HORIZON


@dataclass(frozen=True)
class Product:
    name: str
    horizons: tuple[int, ...]
    as_of: bool  # its origin comes from an as-of time (else from a past date or an origin range)
    # Whether each run draws its date's report PNG. The hourly nowcast does not: it would redraw the
    # day's plot 24 times a day, most of an hourly run's own time, for readers that are apps;
    # its accuracy is scored every run all the same (accuracy/product=nowcast/).
    report_png: bool = True


DAY_AHEAD = Product("day-ahead", tuple(range(1, MAX_HORIZON + 1)), as_of=True)
NOWCAST = Product("nowcast", (1, 2, 3), as_of=True, report_png=False)
EVALUATION = Product("evaluation", (1, 2, 3), as_of=False)
PRODUCTS = {p.name: p for p in (DAY_AHEAD, NOWCAST, EVALUATION)}


def product_named(name: str) -> Product:
    try:
        return PRODUCTS[name]
    except KeyError:
        raise ConfigError(f"unknown product {name!r}; one of {', '.join(PRODUCTS)}") from None
