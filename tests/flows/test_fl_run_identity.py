from datetime import date, datetime, timedelta

import pytest

from velibcast.errors import ConfigError
from velibcast.flows.run_identity import RunSpec, run_id_for, yesterday_in_paris
from velibcast.timeutil import UTC


def test_run_id_is_what_the_run_computes():
    a = run_id_for(RunSpec(date(2022, 5, 26)), "abcd1234", "lstm-20220525-0f0f0f0f")
    assert a == run_id_for(RunSpec(date(2022, 5, 26)), "abcd1234", "lstm-20220525-0f0f0f0f")
    assert a != run_id_for(RunSpec(date(2022, 5, 26)), "abcd1235", "lstm-20220525-0f0f0f0f")
    r = RunSpec(date(2022, 5, 26), datetime(2022, 5, 26, 5, tzinfo=UTC), datetime(2022, 5, 26, 8, tzinfo=UTC))
    assert run_id_for(r, "abcd1234", "v1").startswith("20220526T05-20220526T08_")


def test_yesterday_is_a_paris_day():
    # 23:30 UTC on 2022-05-25 is already 2022-05-26 in Paris
    assert yesterday_in_paris(datetime(2022, 5, 25, 23, 30, tzinfo=UTC)) == date(2022, 5, 25)


def test_a_product_run_is_named_by_its_product_and_origin_hour():
    origin = datetime(2022, 5, 26, 0, tzinfo=UTC)

    def spec(product, as_of_minute):
        return RunSpec(date(2022, 5, 26), origin, origin + timedelta(hours=1), product,
                       origin + timedelta(minutes=as_of_minute))

    day_ahead = run_id_for(spec("day-ahead", 30), "abcd1234", "gbm-1")
    assert day_ahead == "day-ahead-20220526T00_abcd1234_gbm-1"
    # as of 00:30 or 00:55, the origin and the captures its windows read are the same: a rerun reuses the run
    assert run_id_for(spec("day-ahead", 55), "abcd1234", "gbm-1") == day_ahead
    assert run_id_for(spec("nowcast", 30), "abcd1234", "gbm-1") == "nowcast-20220526T00_abcd1234_gbm-1"
    # the evaluation of the same one-hour range is another run
    evaluation = RunSpec(date(2022, 5, 26), origin, origin + timedelta(hours=1))
    assert evaluation.product == "evaluation" and evaluation.as_of is None
    assert run_id_for(evaluation, "abcd1234", "gbm-1") == "20220526T00-20220526T01_abcd1234_gbm-1"


def test_an_origin_range_needs_both_ends():
    with pytest.raises(ConfigError, match="needs both its start and its end"):
        RunSpec(date(2022, 5, 26), datetime(2022, 5, 26, 5, tzinfo=UTC))
