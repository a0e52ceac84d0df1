"""Wall clock: on the nights the clocks change in Europe/Paris (2023-03-26 spring, 2022-10-30 autumn),
a day-ahead or nowcast run still forecasts the 24 (3) UTC hours after its origin, its origin is the
latest whole hour with data at its as-of time, its partition is the Paris date of that origin, and
the deployments' schedules fire as often as promised."""

import asyncio
from datetime import date, datetime, timedelta

import pytest
import yaml

from tests.helpers import REPO, output_line
from velibcast.config import load_config
from velibcast.datasets.snapshots import write_snapshot
from velibcast.flows import forecasts, preflight
from velibcast.flows.products import DAY_AHEAD, NOWCAST
from velibcast.timeutil import PARIS, UTC, iso_minute

HOUR = timedelta(hours=1)


def _captures_every_hour(storage, root, first: datetime, last: datetime) -> None:
    """A capture 10 min past each UTC hour (so an hour's state is its previous capture's)."""
    t = first
    while t <= last:
        write_snapshot(storage, root, t + timedelta(minutes=10), [
            {"stationcode": "A", "name": "A", "capacity": 20, "numbikesavailable": 5, "numdocksavailable": 15,
             "mechanical": 5, "ebike": 0, "is_installed": "OUI", "is_renting": "OUI", "is_returning": "OUI",
             "coordonnees_geo": {"lat": 48.85, "lon": 2.3}}])
        t += HOUR


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


# as-of (a Paris wall-clock time with its offset), expected origin (UTC), expected partition date
CASES = [
    # spring: 02:00 CET jumps to 03:00 CEST (01:00Z)
    ("2023-03-26T00:30+01:00", "2023-03-25T23:00Z", date(2023, 3, 26)),  # a UTC hour of the 25th, Paris' 26th
    ("2023-03-26T01:30+01:00", "2023-03-26T00:00Z", date(2023, 3, 26)),  # the nightly deployment's 02:30 that day
    ("2023-03-26T03:30+02:00", "2023-03-26T01:00Z", date(2023, 3, 26)),  # first hour after the change
    ("2023-03-25T23:30+01:00", "2023-03-25T22:00Z", date(2023, 3, 25)),
    # autumn: 03:00 CEST falls back to 02:00 CET (01:00Z): 02:30 happens twice
    ("2022-10-30T02:30+02:00", "2022-10-30T00:00Z", date(2022, 10, 30)),
    ("2022-10-30T02:30+01:00", "2022-10-30T01:00Z", date(2022, 10, 30)),
    ("2022-10-30T00:30+02:00", "2022-10-29T22:00Z", date(2022, 10, 30)),  # UTC's 29th, Paris' 30th
    ("2022-10-29T23:30+02:00", "2022-10-29T21:00Z", date(2022, 10, 29)),
]


@pytest.mark.parametrize("product", [DAY_AHEAD, NOWCAST], ids=lambda p: p.name)
@pytest.mark.parametrize("as_of, origin, run_date", CASES, ids=[c[0] for c in CASES])
def test_origin_targets_and_partition_around_the_clock_changes(tmp_path, storage, product, as_of, origin, run_date):
    root = str(tmp_path / "root")
    as_of_utc = _utc(as_of)
    _captures_every_hour(storage, root, as_of_utc - timedelta(hours=30), as_of_utc + timedelta(hours=30))
    spec = preflight.product_spec(load_config(None, overrides={"store": {"root": root}}), product.name, as_of_utc)
    assert spec.start == _utc(origin.replace("Z", "+00:00")) and spec.end == spec.start + HOUR
    assert spec.run_date == run_date == spec.start.astimezone(PARIS).date()
    assert spec.as_of == as_of_utc
    # the published rows: targets are the UTC hours after the origin, whatever the wall clock did
    rid = f"A@{iso_minute(spec.start)}"
    table = forecasts.join_predictions({rid: forecasts.SentRecord("A", spec.start, 20, False)},
                                       [("o.out", output_line(rid, [5], 20).encode())], "csv", "v1", "run-1", product)
    targets = table.column("target_ts").to_pylist()
    assert targets == [spec.start + h * HOUR for h in product.horizons]
    # one Paris label per hour (with its offset: in autumn 02:00+02:00 and 02:00+01:00 are two hours)
    assert len({t.astimezone(PARIS).isoformat() for t in targets}) == len(targets)
    forecasts.check_partition(table, spec.run_date, "test")  # every origin on the partition's Paris date


def _fires(deployment: str, start: datetime, n: int) -> list[datetime]:
    from prefect.server.schemas.schedules import CronSchedule

    d = next(d for d in yaml.safe_load((REPO / "prefect.yaml").read_text())["deployments"] if d["name"] == deployment)
    s = d["schedules"][0]
    return list(asyncio.run(CronSchedule(cron=s["cron"], timezone=s["timezone"]).get_dates(n=n, start=start)))


@pytest.mark.parametrize("change", [datetime(2023, 3, 26, 1, tzinfo=UTC), datetime(2022, 10, 30, 1, tzinfo=UTC)])
def test_the_schedules_fire_as_promised_across_the_clock_changes(change):
    hourly = _fires("nowcast", change - timedelta(hours=12), 24)
    assert all(b - a == HOUR for a, b in zip(hourly, hourly[1:])), hourly  # every hour, none skipped or doubled
    nightly = [t.astimezone(UTC) for t in _fires("day-ahead", change - timedelta(days=2), 4)]
    assert len({t.astimezone(PARIS).date() for t in nightly}) == 4  # once a Paris night
    assert all(t.astimezone(PARIS).hour in (1, 2, 3) for t in nightly), nightly  # in the night, before the day starts
