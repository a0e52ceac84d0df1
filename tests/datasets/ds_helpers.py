"""Small builders shared by the datasets tests (imported by path: tests run with importlib mode)."""

from datetime import datetime, timezone

UTC = timezone.utc
REAL = "/work/shared/data/real"
SERIES = f"{REAL}/paris_opendata_csv_timeseries_2022-05-23_to_05-26_mlaajaj-VelibScraper"
INFO_2022 = f"{REAL}/paris_gbfs_station_information_2022-05-26_MrDajman-VelibApp/station_information.json"


def utc(s: str) -> datetime:
    return datetime.fromisoformat(s.replace("Z", "+00:00")).astimezone(UTC)


def rec(code="1001", bikes=5, docks=10, capacity=20, due="2022-05-23T10:00:00+00:00", installed="OUI",
        renting="OUI", returning="OUI", lat=48.85, lon=2.35, **extra) -> dict:
    d = {"stationcode": code, "name": f"Station {code}", "is_installed": installed, "capacity": capacity,
         "numdocksavailable": docks, "numbikesavailable": bikes, "mechanical": bikes, "ebike": 0,
         "is_renting": renting, "is_returning": returning, "duedate": due,
         "coordonnees_geo": {"lat": lat, "lon": lon}}
    d.update(extra)
    return d
