"""The products: the horizons each keeps, where its origin comes from, the names users type."""

import pytest

from velibcast.errors import ConfigError
from velibcast.flows.cli import build_parser
from velibcast.flows.products import DAY_AHEAD, EVALUATION, NOWCAST, PRODUCTS, product_named
from velibcast.transform_code.velib_features import MAX_HORIZON


def test_each_product_keeps_its_horizons_and_takes_its_origin_from_its_source():
    assert DAY_AHEAD.horizons == tuple(range(1, MAX_HORIZON + 1)) and MAX_HORIZON == 24
    assert NOWCAST.horizons == EVALUATION.horizons == (1, 2, 3)
    assert DAY_AHEAD.as_of and NOWCAST.as_of and not EVALUATION.as_of
    assert list(PRODUCTS) == ["day-ahead", "nowcast", "evaluation"]


def test_a_product_is_found_by_its_name_and_a_wrong_name_lists_the_right_ones():
    assert product_named("nowcast") is NOWCAST
    with pytest.raises(ConfigError, match="unknown product 'dayahead'; one of day-ahead, nowcast, evaluation"):
        product_named("dayahead")


@pytest.mark.parametrize("command", ["run", "score"])
def test_the_cli_offers_every_product(command):
    sub = next(a for a in build_parser()._actions if a.dest == "command").choices[command]
    (option,) = [a for a in sub._actions if a.dest == "product"]
    assert sorted(option.choices) == sorted(PRODUCTS)
