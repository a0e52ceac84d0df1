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
from datetime import datetime
from typing import Any, cast

import pyarrow.parquet as pq

from velibcast import storage as st
from velibcast.datasets.jsonio import loads
from velibcast.datasets.report import SkipReport, ValidationPolicy
from velibcast.datasets.snapshots import write_snapshot
from velibcast.errors import ConfigError
from velibcast.timeutil import PARIS, UTC, iso_minute, iso_second, parse_key_time

_SERIES_NAME_RE = re.compile(r"data_(\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}Z)\.csv$")


class _Skip(Exception):
    def __init__(self, reason: str, detail: str):
        self.reason, self.detail = reason, detail


def _converted(row: dict, col: str, code: str, convert, reason: str, what: str):
    v = row.get(col)
    try:
        return convert(v)
    except (TypeError, ValueError):
        raise _Skip(reason, f"station {code}: {col}={v!r} is not {what}") from None


def _int(row: dict, col: str, code: str) -> int:
    return _converted(row, col, code, int, "bad_type", "an integer")


def _float(row: dict, col: str, code: str) -> float:
    return _converted(row, col, code, float, "missing_coords", "a number")


def _flag01(row: dict, col: str, code: str) -> str:
    v = row.get(col)
    if v in ("1", "0"):
        return "OUI" if v == "1" else "NON"
    raise _Skip("bad_type", f"station {code}: {col}={v!r} is not 1 or 0")


def paris_local_to_iso(naive: str | None, code: str) -> str:
    """'2022-05-23 00:57:18' in Europe/Paris -> '2022-05-23T00:57:18+02:00'.

    In the repeated hour of the autumn change the first occurrence (fold=0) is taken:
    the source does not say which one it meant.
    """
    try:
        dt = datetime.fromisoformat(naive or "")  # None: the same refusal as an empty string
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
    return parse_key_time(m.group(1))


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
    counts: dict[str, Any] = {"files": 0, "records": 0, "snapshots_written": 0}
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


# ---------------------------------------------------------------- single-snapshot formats
def _oui_non(v, field: str, code: str) -> str:
    """GBFS 0/1 or booleans, or the portal's OUI/NON, to "OUI"/"NON"."""
    if v in ("OUI", "NON"):
        return v
    if v in (0, 1) and type(v) in (int, bool):
        return "OUI" if v else "NON"
    raise _Skip("bad_type", f"station {code}: {field}={v!r} is not 0/1, true/false or OUI/NON")


def _epoch_iso(v, code: str) -> str:
    if type(v) not in (int, float):
        raise _Skip("bad_duedate", f"station {code}: last_reported={v!r} is not epoch seconds")
    return datetime.fromtimestamp(v, UTC).isoformat()


def _bike_types(types, code: str) -> tuple[int, int]:
    """GBFS bike types: Smovengo's list of one-key dicts, or a plain dict; missing types count 0."""
    if isinstance(types, list):
        merged: dict = {}
        for item in types:
            if not isinstance(item, dict):
                raise _Skip("bad_type", f"station {code}: num_bikes_available_types item {item!r} is not an object")
            merged.update(item)
        types = merged
    if not isinstance(types, dict):
        raise _Skip("bad_type", f"station {code}: num_bikes_available_types={types!r} is not a list or object")
    return types.get("mechanical", 0), types.get("ebike", 0)


def convert_gbfs(info_doc: dict, status_doc: dict, where: str, policy, report) -> tuple[datetime, list[dict]]:
    """GBFS station_information + station_status (any city) to v2.1 records.

    stationCode is the OpenData stationcode when the feed has it (Paris); other networks
    only have station_id, which is used as the code. Capture time: the status feed's
    last_updated (GBFS) or lastUpdatedOther (Smovengo's variant).
    """
    ts = status_doc.get("last_updated", status_doc.get("lastUpdatedOther"))
    if type(ts) not in (int, float):
        raise ConfigError(f"{where}: station_status has no last_updated/lastUpdatedOther epoch; pass --capture-ts")
    ts = cast(float, ts)  # checked just above (type(), so bool is refused)
    info = {s["station_id"]: s for s in info_doc["data"]["stations"]}
    out = []
    for n, s in enumerate(status_doc["data"]["stations"], 1):
        sid = s.get("station_id")
        try:
            i = info.get(sid)
            if i is None:
                raise _Skip("unknown_station_id", f"station_id {sid!r} is in station_status but not in station_information")
            code = str(s.get("stationCode") or i.get("stationCode") or sid)
            mech, ebike = _bike_types(s.get("num_bikes_available_types", {}), code)
            out.append({
                "stationcode": code, "name": i.get("name", ""),
                "is_installed": _oui_non(s.get("is_installed"), "is_installed", code),
                "capacity": i.get("capacity"),
                "numdocksavailable": s.get("num_docks_available"),
                "numbikesavailable": s.get("num_bikes_available"),
                "mechanical": mech, "ebike": ebike,
                "is_renting": _oui_non(s.get("is_renting"), "is_renting", code),
                "is_returning": _oui_non(s.get("is_returning"), "is_returning", code),
                "duedate": _epoch_iso(s.get("last_reported"), code),
                "coordonnees_geo": {"lat": i.get("lat"), "lon": i.get("lon")},
            })
        except _Skip as e:
            report.reject(policy, e.reason, f"{where} station {n}", e.detail)
    return datetime.fromtimestamp(ts, UTC), out


_V21_KEYS = ("stationcode", "name", "is_installed", "capacity", "numdocksavailable", "numbikesavailable",
             "mechanical", "ebike", "is_renting", "is_returning", "duedate", "coordonnees_geo")


def convert_v21(doc, where: str) -> list[dict]:
    """Explore API v2.1 records: a JSON array (portal export) or {"results": [...]} (API page)."""
    rows = doc.get("results") if isinstance(doc, dict) else doc
    if not isinstance(rows, list):
        raise ConfigError(f"{where}: expected a JSON array of records or {{\"results\": [...]}}")
    return [{k: r.get(k) for k in _V21_KEYS} for r in rows]


def convert_v1(doc, where: str, policy, report) -> tuple[datetime | None, list[dict]]:
    """Legacy v1 export: {"fields": {...}, "record_timestamp"}; coordonnees_geo is [lat, lon]."""
    if not isinstance(doc, list):
        raise ConfigError(f"{where}: expected the v1 export's JSON array of records")
    out, stamps = [], set()
    for n, r in enumerate(doc, 1):
        f = r.get("fields", {})
        geo = f.get("coordonnees_geo")
        if not (isinstance(geo, list) and len(geo) == 2):
            report.reject(policy, "missing_coords", f"{where} record {n}",
                          f"station {f.get('stationcode')}: coordonnees_geo={geo!r} is not [lat, lon]")
            continue
        out.append({**{k: f.get(k) for k in _V21_KEYS}, "coordonnees_geo": {"lat": geo[0], "lon": geo[1]}})
        if r.get("record_timestamp"):
            stamps.add(r["record_timestamp"])
    capture = max(datetime.fromisoformat(t) for t in stamps).astimezone(UTC) if stamps else None
    return capture, out


_PORTAL_COLUMNS = {
    "Identifiant station": "stationcode", "Nom station": "name", "Station en fonctionnement": "is_installed",
    "Capacité de la station": "capacity", "Nombre bornettes libres": "numdocksavailable",
    "Nombre total vélos disponibles": "numbikesavailable", "Vélos mécaniques disponibles": "mechanical",
    "Vélos électriques disponibles": "ebike", "Borne de paiement disponible": "is_renting",
    "Retour vélib possible": "is_returning", "Actualisation de la donnée": "duedate",
}


def convert_portal_csv(text: str, where: str, policy, report) -> list[dict]:
    """The portal's CSV export: `;`, French headers, BOM, CRLF, "lat, lon" in one field."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")), delimiter=";")
    missing = set(_PORTAL_COLUMNS) - set(reader.fieldnames or [])
    if missing:
        raise ConfigError(f"{where}: not the portal CSV export, columns {sorted(missing)} are missing")
    out = []
    for lineno, row in enumerate(reader, 2):
        code = row.get("Identifiant station", "")
        try:
            r = {v: row[k] for k, v in _PORTAL_COLUMNS.items()}
            for f in ("capacity", "numdocksavailable", "numbikesavailable", "mechanical", "ebike"):
                r[f] = _int(r, f, code)
            geo = (row.get("Coordonnées géographiques") or "").split(",")
            if len(geo) != 2:
                raise _Skip("missing_coords", f"station {code}: Coordonnées géographiques={row.get('Coordonnées géographiques')!r} is not 'lat, lon'")
            r["coordonnees_geo"] = {"lat": _float({"lat": geo[0]}, "lat", code), "lon": _float({"lon": geo[1]}, "lon", code)}
            r["duedate"] = r["duedate"] or None
            out.append(r)
        except _Skip as e:
            report.reject(policy, e.reason, f"{where} line {lineno}", e.detail)
    return out


def _latest_duedate(records: list[dict], where: str) -> datetime:
    stamps = []
    for r in records:
        try:
            stamps.append(datetime.fromisoformat(r["duedate"]).astimezone(UTC))
        except (TypeError, ValueError):
            continue
    if not stamps:
        raise ConfigError(f"{where}: no capture time in the source and no duedate to infer it; pass --capture-ts")
    return max(stamps)


def _single(storage, dest, layout, capture, records, where, inferred, report) -> dict:
    uri = write_snapshot(storage, dest, capture, records, layout)
    return {"files": 1, "records": len(records), "snapshots_written": 1, "snapshot": uri,
            "capture_ts": f"{iso_second(capture)}",
            "capture_ts_source": inferred, "report": report.to_dict()}


def _import_gbfs(storage, src, dest, station_info_uri=None, capture_ts=None, layout="partitioned", policy=None):
    if not station_info_uri:
        raise ConfigError("--format gbfs needs --src station_status.json and --station-info station_information.json")
    policy, report = policy or ValidationPolicy(), SkipReport()
    cap, recs = convert_gbfs(loads(storage.read_bytes(station_info_uri)), loads(storage.read_bytes(src)), src, policy, report)
    source = "station_status last_updated"
    if capture_ts:
        cap, source = capture_ts, "--capture-ts"
    return _single(storage, dest, layout, cap, recs, src, source, report)


def _import_v21(storage, src, dest, station_info_uri=None, capture_ts=None, layout="partitioned", policy=None):
    recs = convert_v21(loads(storage.read_bytes(src)), src)
    cap, source = (capture_ts, "--capture-ts") if capture_ts else (_latest_duedate(recs, src), "latest duedate")
    return _single(storage, dest, layout, cap, recs, src, source, SkipReport())


def _import_v1(storage, src, dest, station_info_uri=None, capture_ts=None, layout="partitioned", policy=None):
    policy, report = policy or ValidationPolicy(), SkipReport()
    cap, recs = convert_v1(loads(storage.read_bytes(src)), src, policy, report)
    source = "record_timestamp"
    if capture_ts or cap is None:
        cap, source = (capture_ts, "--capture-ts") if capture_ts else (_latest_duedate(recs, src), "latest duedate")
    return _single(storage, dest, layout, cap, recs, src, source, report)


def _import_portal_csv(storage, src, dest, station_info_uri=None, capture_ts=None, layout="partitioned", policy=None):
    policy, report = policy or ValidationPolicy(), SkipReport()
    recs = convert_portal_csv(storage.read_bytes(src).decode("utf-8"), src, policy, report)
    cap, source = (capture_ts, "--capture-ts") if capture_ts else (_latest_duedate(recs, src), "latest duedate")
    return _single(storage, dest, layout, cap, recs, src, source, report)


def convert_bins_parquet(data: bytes, where: str, report: SkipReport, station_stride: int = 1) -> dict[datetime, list[dict]]:
    """Per-station 15-minute aggregates of GBFS (Parquet: tbin_utc naive UTC, stationcode, name,
    nb_velos_bin, nb_bornes_bin, capacity_bin, lat, lon) -> one snapshot per whole UTC hour H holding,
    for each station, its latest bin in (H - 1 h, H], with duedate = the bin's time.

    The source has no installed/renting flags nor the mechanical/e-bike split: a station in the
    feed is taken as installed and renting, and its bikes as mechanical (ebike 0); nothing reads
    the split. A bin without capacity is counted as `bad_type` and dropped. `station_stride` keeps
    every n-th station code in sorted order (a smaller bundled sample).
    """
    import pandas as pd  # lazy: pandas (~0.45 s) only for the bins Parquet importer

    cols = ["tbin_utc", "stationcode", "name", "nb_velos_bin", "nb_bornes_bin", "capacity_bin", "lat", "lon"]
    df = pq.read_table(io.BytesIO(data), columns=cols).to_pandas()
    codes = sorted(df["stationcode"].dropna().astype(str).unique())
    df = df[df["stationcode"].isna() | df["stationcode"].isin(set(codes[::max(1, station_stride)]))]
    bad = df["stationcode"].isna() | df["capacity_bin"].isna() | df["nb_velos_bin"].isna() | df["lat"].isna() | df["lon"].isna()
    for code, t in df.loc[bad, ["stationcode", "tbin_utc"]].head(report.max_examples).itertuples(index=False):
        report.add("bad_type", where, f"station {code} bin {iso_minute(t)}: capacity, bikes or coordinates missing", n=0)
    if bad.any():
        report.counts["bad_type"] = report.counts.get("bad_type", 0) + int(bad.sum())
    df = df[~bad].copy()
    df["hour"] = df["tbin_utc"].dt.ceil("h")
    df = df.sort_values("tbin_utc").groupby(["hour", "stationcode"], as_index=False).last()
    out: dict[datetime, list[dict]] = {}
    for hour, g in df.groupby("hour"):
        out[pd.Timestamp(hour).tz_localize(UTC).to_pydatetime()] = [
            {"stationcode": str(r.stationcode), "name": r.name, "is_installed": "OUI", "capacity": int(r.capacity_bin),
             "numdocksavailable": int(r.nb_bornes_bin), "numbikesavailable": int(r.nb_velos_bin),
             "mechanical": int(r.nb_velos_bin), "ebike": 0, "is_renting": "OUI", "is_returning": "OUI",
             "duedate": pd.Timestamp(r.tbin_utc).tz_localize(UTC).isoformat(),
             "coordonnees_geo": {"lat": float(r.lat), "lon": float(r.lon)}}
            for r in g.itertuples(index=False)]
    return out


def import_bins_parquet(storage, src, dest, station_info_uri=None, capture_ts=None, layout="partitioned", policy=None,
                        station_stride: int = 1, start: datetime | None = None, end: datetime | None = None):
    """See convert_bins_parquet; `start`/`end` keep the hours in [start, end]."""
    report = SkipReport()
    hours = convert_bins_parquet(storage.read_bytes(src), src, report, station_stride)
    n = 0
    for hour, recs in sorted(hours.items()):
        if (start and hour < start) or (end and hour > end):
            continue
        write_snapshot(storage, dest, hour, recs, layout)
        n += len(recs)
    kept = [h for h in hours if not ((start and h < start) or (end and h > end))]
    return {"files": 1, "records": n, "snapshots_written": len(kept), "report": report.to_dict()}


# format name -> importer(storage, src, dest, station_info_uri, capture_ts, layout, policy) -> counts
FORMATS = {
    "csv-series": _import_csv_series,
    "gbfs": _import_gbfs,
    "v21-json": _import_v21,
    "v1-json": _import_v1,
    "portal-csv": _import_portal_csv,
    "bins-parquet": import_bins_parquet,
}


def import_source(storage: st.Storage, fmt: str, src: str, dest: str, **kwargs) -> dict:
    try:
        fn = FORMATS[fmt]
    except KeyError:
        raise ConfigError(f"unknown import format {fmt!r}; use one of {sorted(FORMATS)}") from None
    return fn(storage, src, dest, **kwargs)
