import itertools

from velibcast.retry import Backoff


def test_pauses_double_between_tries_and_stop_before_the_last():
    assert list(Backoff(0.2, attempts=4).pauses()) == [0.2, 0.4, 0.8]
    assert list(Backoff(0.2, attempts=1).pauses()) == []


def test_endless_pauses_are_capped():
    assert list(itertools.islice(Backoff(5.0, max_s=60.0).pauses(), 6)) == [5.0, 10.0, 20.0, 40.0, 60.0, 60.0]
