"""Importers: each real format lands in the snapshot store and reads back clean."""

from tests.datasets.ds_helpers import INFO_2022, SERIES, utc
from tests.helpers import read_snapshot
from velibcast.datasets.importers import convert_csv_series_file, import_csv_series, load_station_information
from velibcast.datasets.report import SkipReport, ValidationPolicy
from velibcast.datasets.snapshots import list_snapshots


def test_csv_series_first_row_verbatim(storage):
    info = load_station_information(storage.read_bytes(INFO_2022))
    text = storage.read_bytes(f"{SERIES}/data_2022-05-22T23-37-40Z.csv").decode()
    report = SkipReport()
    out = convert_csv_series_file(text, "f", info, ValidationPolicy(), report)
    assert len(out) == 1413 and report.counts == {}
    first = out[0]
    assert first["stationcode"] == str(info[15290700]["stationCode"])
    assert first == {**first, "name": "Aboukir - Alexandrie", "is_installed": "OUI", "capacity": 21,
                     "numdocksavailable": 8, "numbikesavailable": 10, "mechanical": 9, "ebike": 1,
                     "is_renting": "OUI", "is_returning": "OUI", "duedate": "2022-05-23T00:57:18+02:00",
                     "coordonnees_geo": {"lat": 48.86868344444473, "lon": 2.3502043269474897}}


def test_csv_series_bad_rows_are_counted(storage):
    info = load_station_information(storage.read_bytes(INFO_2022))
    text = storage.read_bytes(f"{SERIES}/data_2022-05-22T23-37-40Z.csv").decode()
    head, row1, row2, *_ = text.splitlines()
    bad_id = row1.replace("15290700", "999", 1)
    bad_due = row2.rsplit(",2022-", 1)[0]  # drop duedate and the rest
    report = SkipReport()
    out = convert_csv_series_file("\n".join([head, bad_id, bad_due]), "f.csv", info, ValidationPolicy(), report)
    assert out == []
    assert report.counts == {"unknown_station_id": 1, "bad_duedate": 1}
    assert report.examples["unknown_station_id"] == [
        "f.csv line 2: station_id '999' is not in station_information; use the file of the same week"]


def test_csv_series_import_whole_folder(any_root, storage, tmp_path):
    # a few files to keep the S3 variant quick: copy them to a small source folder
    src = str(tmp_path / "src")
    for name in ["data_2022-05-23T21-36-58Z.csv", "data_2022-05-23T22-40-15Z.csv", "index.csv"]:
        storage.write_bytes(f"{src}/{name}", storage.read_bytes(f"{SERIES}/{name}"))
    counts = import_csv_series(storage, src, INFO_2022, any_root)
    assert {k: counts[k] for k in ("files", "records", "snapshots_written")} == \
        {"files": 2, "records": 1413 + 309, "snapshots_written": 2}
    refs = list_snapshots(storage, any_root, utc("2022-05-23T00:00Z"), utc("2022-05-24T00:00Z"))
    assert [r.capture_ts for r in refs] == [utc("2022-05-23T21:36:58Z"), utc("2022-05-23T22:40:15Z")]
    assert "/date=2022-05-23/" in refs[0].uri
    report = SkipReport()
    recs = read_snapshot(storage, refs[1], ValidationPolicy(), report)
    assert len(recs) == 309 and report.total("records_rejected") == 0
    assert recs[0].obs_ts == utc("2022-05-23T22:00:40Z")


# ---------------------------------------------------------------- every real single-snapshot format
import pytest  # noqa: E402

from tests.datasets.ds_helpers import REAL  # noqa: E402
from velibcast.datasets.importers import import_source  # noqa: E402
from velibcast.datasets.snapshots import SnapshotRef, capture_ts_from_key  # noqa: E402

GBFS = f"{REAL}/paris_gbfs_snapshot_2025-10-18_dariusbengo-Velib"
V21 = f"{REAL}/paris_opendata_records_json_v2.1_sample_2026-09-18_Makan1996/velib-disponibilite-en-temps-reel_first3records.json"
V1 = f"{REAL}/paris_opendata_export_json_v1_2020-06-24_hosuaby/velib-disponibilite-en-temps-reel.json"
PORTAL = f"{REAL}/paris_opendata_export_csv_2026-04-06_mxvml-cityflow-velib-dashboard/velib-disponibilite-en-temps-reel.csv"


def read_back(storage, counts):
    uri = counts["snapshot"]
    report = SkipReport()
    recs = read_snapshot(storage, SnapshotRef(uri, capture_ts_from_key(uri)), ValidationPolicy(), report)
    return {r.station_code: r for r in recs}, report


def test_gbfs_pair(any_root, storage):
    c = import_source(storage, "gbfs", f"{GBFS}/station_status.json", any_root,
                      station_info_uri=f"{GBFS}/station_information.json")
    assert c["records"] == 1495 and c["capture_ts"] == "2025-10-18T09:09:16Z"
    recs, report = read_back(storage, c)
    assert len(recs) == 1495 and report.total("records_rejected") == 0
    r = recs["16107"]  # first record of both files, verbatim in SOURCE.md
    assert (r.bikes, r.mechanical, r.ebike, r.docks, r.capacity) == (5, 1, 4, 30, 35)
    assert r.obs_ts == utc("2025-10-18T08:31:34Z") and r.is_installed and (r.lat, r.lon) == (48.865983, 2.275725)
    assert sum(not r.is_installed for r in recs.values()) == 11


def test_gbfs_without_station_code_uses_station_id(tmp_path, storage):
    from velibcast.datasets.importers import convert_gbfs

    info = {"data": {"stations": [{"station_id": "a1", "name": "X", "lat": 1.0, "lon": 2.0, "capacity": 10}]}}
    status = {"last_updated": 1700000000, "data": {"stations": [
        {"station_id": "a1", "num_bikes_available": 3, "num_docks_available": 7, "num_bikes_available_types": {"ebike": 3},
         "is_installed": True, "is_renting": True, "is_returning": False, "last_reported": 1699999990},
        {"station_id": "zz", "num_bikes_available": 1}]}}
    report = SkipReport()
    cap, recs = convert_gbfs(info, status, "feed", ValidationPolicy(), report)
    assert recs[0]["stationcode"] == "a1" and (recs[0]["mechanical"], recs[0]["ebike"]) == (0, 3)
    assert recs[0]["is_returning"] == "NON" and report.counts == {"unknown_station_id": 1}
    assert "station_id 'zz' is in station_status but not in station_information" in report.examples["unknown_station_id"][0]


def test_v21_json_records(any_root, storage):
    c = import_source(storage, "v21-json", V21, any_root)
    assert c["records"] == 3 and c["capture_ts_source"] == "latest duedate"
    recs, report = read_back(storage, c)
    r = recs["32304"]
    assert (r.bikes, r.docks, r.capacity, r.obs_ts) == (9, 20, 28, utc("2026-09-18T11:37:19Z"))
    # the verbatim record breaks bikes + docks <= capacity: flagged, kept
    assert report.counts == {"over_capacity": 1}


def test_v1_legacy_json(tmp_path, storage):
    c = import_source(storage, "v1-json", V1, str(tmp_path))
    assert c["records"] == 1398 and c["capture_ts"] == "2020-06-24T11:24:06Z"
    recs, report = read_back(storage, c)
    r = recs["12109"]
    assert (r.lat, r.lon) == (48.8408553118, 2.38755494356) and (r.bikes, r.docks, r.capacity) == (4, 25, 30)
    assert report.total("records_rejected") == 0 and len(recs) == 1398


def test_portal_csv_with_bom_and_french_headers(tmp_path, storage):
    c = import_source(storage, "portal-csv", PORTAL, str(tmp_path), capture_ts=utc("2026-04-06T10:50:00Z"))
    assert c["records"] == 1509 and c["capture_ts_source"] == "--capture-ts"
    recs, report = read_back(storage, c)
    r = recs["16107"]
    assert (r.bikes, r.docks, r.mechanical, r.ebike, r.capacity) == (7, 27, 6, 1, 35)
    assert (r.lat, r.lon) == (48.865983, 2.275725) and r.obs_ts == utc("2026-04-06T10:49:36Z")
    assert sum(not r.is_installed for r in recs.values()) == 3 and report.total("records_rejected") == 0


def test_unknown_format_names_the_choices(storage):
    from velibcast.errors import ConfigError

    with pytest.raises(ConfigError, match="use one of"):
        import_source(storage, "xml", "x", "y")


def test_the_cli_format_list_is_the_importers_list():
    from velibcast import constants as C
    from velibcast.datasets.importers import FORMATS

    assert set(C.SNAPSHOT_IMPORT_FORMATS) == set(FORMATS)
