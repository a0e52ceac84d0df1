"""Bring every real source format into the snapshot store as v2.1-shaped records.

Each converter maps one source's fields to the Paris OpenData v2.1 record shape
(stationcode, name, capacity, numbikesavailable, numdocksavailable, mechanical, ebike,
is_installed/is_renting/is_returning "OUI"/"NON", duedate ISO-8601 with offset,
coordonnees_geo {lat, lon}). Values are mapped, never repaired: a value that does not
convert is counted with its reason and the record left out, and the reader validates
the result again.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from velibcast import constants as C
from velibcast import storage as st
from velibcast.datasets.jsonio import loads
from velibcast.datasets.report import SkipReport, ValidationPolicy
from velibcast.datasets.snapshots import write_snapshot
from velibcast.errors import ConfigError

UTC = timezone.utc
PARIS = ZoneInfo(C.LOCAL_TIMEZONE)
_SERIES_NAME_RE = re.compile(r"data_(\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}Z)\.csv$")


class _Skip(Exception):
    def __init__(self, reason: str, detail: str):
        self.reason, self.detail = reason, detail


def _int(row: dict, col: str, code: str) -> int:
    v = row.get(col)
    try:
        return int(v)
    except (TypeError, ValueError):
        raise _Skip("bad_type", f"station {code}: {col}={v!r} is not an integer") from None


def _float(row: dict, col: str, code: str) -> float:
    v = row.get(col)
    try:
        return float(v)
    except (TypeError, ValueError):
        raise _Skip("missing_coords", f"station {code}: {col}={v!r} is not a number") from None


def _flag01(row: dict, col: str, code: str) -> str:
    v = row.get(col)
    if v in ("1", "0"):
        return "OUI" if v == "1" else "NON"
    raise _Skip("bad_type", f"station {code}: {col}={v!r} is not 1 or 0")


def paris_local_to_iso(naive: str, code: str) -> str:
    """'2022-05-23 00:57:18' in Europe/Paris -> '2022-05-23T00:57:18+02:00'.

    In the repeated hour of the autumn change the first occurrence (fold=0) is taken:
    the source does not say which one it meant.
    """
    try:
        dt = datetime.fromisoformat(naive)
    except (TypeError, ValueError):
        raise _Skip("bad_duedate", f"station {code}: duedate {naive!r} is not 'YYYY-MM-DD HH:MM:SS'") from None
    if dt.tzinfo is not None:
        raise _Skip("bad_duedate", f"station {code}: duedate {naive!r} carries an offset, expected Paris local time")
    return dt.replace(tzinfo=PARIS).isoformat()


def load_station_information(data: bytes) -> dict[int, dict]:
    """GBFS station_information: station_id (int) -> station dict (with stationCode)."""
    doc = loads(data)
    return {int(s["station_id"]): s for s in doc["data"]["stations"]}


def capture_ts_from_series_name(name: str) -> datetime | None:
    m = _SERIES_NAME_RE.search(name)
    if not m:
        return None
    return datetime.strptime(m.group(1), "%Y-%m-%dT%H-%M-%SZ").replace(tzinfo=UTC)


def convert_csv_series_file(
    text: str, where: str, station_info: dict[int, dict], policy: ValidationPolicy, report: SkipReport
) -> list[dict]:
    """One git-scraped data_*.csv (2022-05 schema) to v2.1-shaped records.

    `Identifiant station` there is the GBFS station_id; the matching station_information
    gives stationCode. Flags are 1/0 (the scraper's), duedate naive Paris local time.
    """
    out = []
    reader = csv.DictReader(io.StringIO(text))
    for lineno, row in enumerate(reader, 2):
        sid = row.get("Identifiant station", "")
        try:
            try:
                info = station_info[int(sid)]
            except (ValueError, KeyError):
                raise _Skip("unknown_station_id",
                            f"station_id {sid!r} is not in station_information; use the file of the same week") from None
            code = str(info["stationCode"])
            out.append({
                "stationcode": code,
                "name": row.get("Nom station", ""),
                "is_installed": _flag01(row, "Station en fonctionnement", code),
                "capacity": _int(row, "Capacité de la station", code),
                "numdocksavailable": _int(row, "Nombre bornettes libres", code),
                "numbikesavailable": _int(row, "Nombre total vélos disponibles", code),
                "mechanical": _int(row, "Vélos mécaniques disponibles", code),
                "ebike": _int(row, "Vélos électriques disponibles", code),
                "is_renting": _flag01(row, "Borne de paiement disponible", code),
                "is_returning": _flag01(row, "Retour vélib possible", code),
                "duedate": paris_local_to_iso(row.get("Actualisation de la donnée"), code),
                "coordonnees_geo": {"lat": _float(row, "Lattitude", code), "lon": _float(row, "Longitude", code)},
            })
        except _Skip as s:
            report.reject(policy, s.reason, f"{where} line {lineno}", s.detail)
    return out


def import_csv_series(
    storage: st.Storage,
    src_dir_uri: str,
    station_info_uri: str,
    dest_root: str,
    layout: str = "partitioned",
    policy: ValidationPolicy | None = None,
    report: SkipReport | None = None,
) -> dict:
    """Import every data_<capture>.csv under src_dir_uri; capture time from the file name."""
    policy = policy or ValidationPolicy()
    report = report if report is not None else SkipReport()
    info = load_station_information(storage.read_bytes(station_info_uri))
    counts = {"files": 0, "records": 0, "snapshots_written": 0}
    for obj in storage.list(st.join(src_dir_uri, "data_")):
        ts = capture_ts_from_series_name(obj.uri)
        if ts is None:
            continue
        counts["files"] += 1
        text = storage.read_bytes(obj.uri).decode("utf-8-sig")
        recs = convert_csv_series_file(text, obj.uri, info, policy, report)
        if not recs:
            report.reject(policy, "empty_object", obj.uri, "no record converted")
            continue
        write_snapshot(storage, dest_root, ts, recs, layout)
        counts["records"] += len(recs)
        counts["snapshots_written"] += 1
    counts["report"] = report.to_dict()
    return counts


def _import_csv_series(storage, src, dest, station_info_uri=None, capture_ts=None, layout="partitioned", policy=None):
    if not station_info_uri:
        raise ConfigError("--format csv-series needs --station-info (GBFS station_information.json of the same week)")
    return import_csv_series(storage, src, station_info_uri, dest, layout, policy)


# format name -> importer(storage, src, dest, station_info_uri, capture_ts, layout, policy) -> counts
FORMATS = {
    "csv-series": _import_csv_series,
}


def import_source(storage: st.Storage, fmt: str, src: str, dest: str, **kwargs) -> dict:
    try:
        fn = FORMATS[fmt]
    except KeyError:
        raise ConfigError(f"unknown import format {fmt!r}; use one of {sorted(FORMATS)}") from None
    return fn(storage, src, dest, **kwargs)
