"""Importers: each real format lands in the snapshot store and reads back clean."""

from ds_helpers import INFO_2022, SERIES, utc

from velibcast.datasets.importers import convert_csv_series_file, import_csv_series, load_station_information
from velibcast.datasets.report import SkipReport, ValidationPolicy
from velibcast.datasets.snapshots import list_snapshots, read_snapshot


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
