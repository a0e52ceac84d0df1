from datetime import date, datetime

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
