"""Small builders shared by the datasets tests (imported by path: tests run with importlib mode)."""

import atexit
import gzip
import shutil
import tempfile
from datetime import datetime
from pathlib import Path

from velibcast.timeutil import UTC

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "real"


def _materialise_real_samples() -> str:
    """The gzipped real samples of tests/fixtures/real, decompressed once into a temporary folder.

    They are stored compressed to keep the repository small (0.6 MB instead of 2.6 MB); the importers
    under test read the original bytes, as a user's files would be.
    """
    out = Path(tempfile.mkdtemp(prefix="velibcast-real-"))
    atexit.register(shutil.rmtree, out, True)
    for src in FIXTURES.rglob("*.gz"):
        dest = out / src.relative_to(FIXTURES).with_suffix("")
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(gzip.decompress(src.read_bytes()))
    return str(out)


REAL = _materialise_real_samples()
SERIES = f"{REAL}/paris_opendata_csv_timeseries_2022-05-23_to_05-26_mlaajaj-VelibScraper"
INFO_2022 = str(REPO / "sample_data" / "reference" / "station_information_2022-05-26.json")
SAMPLE_SNAPSHOTS = REPO / "sample_data" / "velib"


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
