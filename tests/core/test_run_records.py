"""Typed run records: a field missing, of the wrong type or of another schema version fails, naming it."""

import dataclasses

import pytest

from velibcast.errors import DataError
from velibcast.run_records import (
    SCHEMA_VERSION,
    Counts,
    Manifest,
    Outputs,
    PartitionOutcome,
    TransformRecord,
    from_json,
    to_json,
    validated,
)


def _manifest(**counts_over):
    counts = dict(stations_seen=2, origins=1, windows_emitted=2, windows_skipped=0, records_rejected={},
                  objects_rejected={}, windows_skipped_by_reason={}, windows_unknown_station=0, records_sent=2,
                  predictions_written=2, forecast_rows=6, station_origins_open=2, coverage=1.0)
    counts.update(counts_over)
    return Manifest(run_id="r", attempt="a", started_at="s", finished_at="f", parameters={}, counts=Counts(**counts),
                    skips={}, data_quality=None, transform_input_layout={}, transform_job={}, timings_s={},
                    cost_estimate={"total": 0.0},
                    outputs=Outputs(forecast_parquet="p", run_dir="d", manifest_uri="m",
                                    partitions=[PartitionOutcome("2022-05-26", "u", "created", 6, 0, 6, 0, [])]))


def test_a_record_survives_its_round_trip_typed():
    m = validated(_manifest())
    assert isinstance(m.counts, Counts) and isinstance(m.outputs.partitions[0], PartitionOutcome)
    assert to_json(m)["schema_version"] == SCHEMA_VERSION


@pytest.mark.parametrize("field, value, message", [
    ("forecast_rows", "6", "'forecast_rows' is str"),
    ("forecast_rows", True, "'forecast_rows' is bool"),
    ("windows_skipped_by_reason", {"stale": "3"}, "windows_skipped_by_reason['stale']"),
    ("coverage", "0.99", "'coverage' is str"),
    ("station_origins_open", None, "'station_origins_open' is NoneType"),
])
def test_a_field_of_the_wrong_type_is_named(field, value, message):
    with pytest.raises(DataError, match=message.replace("[", r"\[").replace("]", r"\]")):
        validated(_manifest(**{field: value}))


def test_a_missing_field_or_another_version_is_refused():
    raw = to_json(TransformRecord(job_spec={}, describe={}, backend="local", input_digest="x"))
    assert from_json(TransformRecord, raw, "t.json").backend == "local"
    del raw["input_digest"]
    with pytest.raises(DataError, match="t.json: field 'input_digest' is missing"):
        from_json(TransformRecord, raw, "t.json")
    raw = {**to_json(TransformRecord({}, {}, "local", "x")), "schema_version": SCHEMA_VERSION - 1}
    with pytest.raises(DataError, match="schema_version"):
        from_json(TransformRecord, raw, "t.json")


def test_records_are_redacted_of_url_credentials():
    m = dataclasses.replace(_manifest(), parameters={"endpoint": "http://AKID:SECRET@minio:9000"})
    assert to_json(m)["parameters"]["endpoint"] == "http://***@minio:9000"
