"""Typed run records: a field missing, of the wrong type or of another schema version fails, naming it."""

import dataclasses
from datetime import UTC, datetime

import pytest

from velibcast.errors import DataError
from velibcast.run_records import (
    SCHEMA_VERSION,
    Counts,
    Manifest,
    Outputs,
    PartitionOutcome,
    TransformJob,
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


SPEC = {"TransformJobName": "velibcast-r-1", "TransformOutput": {"S3OutputPath": "s3://b/runs/r/out/velibcast-r-1"},
        "TransformResources": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 2}}
DESCRIBE = {"TransformJobName": "velibcast-r-1", "TransformJobStatus": "Completed",
            "CreationTime": datetime(2022, 5, 26, 1, 0, tzinfo=UTC),
            "TransformStartTime": datetime(2022, 5, 26, 1, 1, tzinfo=UTC),
            "TransformEndTime": datetime(2022, 5, 26, 1, 4, tzinfo=UTC)}


def _transform(**describe_over):
    return TransformRecord(job_spec=SPEC, describe={**DESCRIBE, **describe_over}, backend="local",
                           input_digest="x")


def test_the_transform_stage_result_reads_its_job_as_typed_fields_and_keeps_them_through_the_store():
    t = validated(_transform())
    assert t.job == TransformJob(name="velibcast-r-1", status="Completed", output_prefix="s3://b/runs/r/out/velibcast-r-1/",
                                 instance_type="ml.m5.xlarge", instance_count=2,
                                 creation_time="2022-05-26T01:00:00+00:00", start_time="2022-05-26T01:01:00+00:00",
                                 end_time="2022-05-26T01:04:00+00:00")
    assert to_json(t)["job"]["instance_count"] == 2  # a reader of the stored record sees the same fields


@pytest.mark.parametrize("describe_over, spec_over, message", [
    ({"TransformJobStatus": "Failed"}, {}, "status 'Failed'"),
    ({"TransformJobName": "velibcast-r-2"}, {}, "velibcast-r-2"),
    ({}, {"TransformResources": {"InstanceType": "ml.m5.xlarge", "InstanceCount": "2"}}, "InstanceCount"),
    ({}, {"TransformOutput": {}}, "S3OutputPath"),
])
def test_a_transform_result_that_is_not_one_completed_job_is_refused_naming_the_field(describe_over, spec_over,
                                                                                      message):
    with pytest.raises(DataError, match=message):
        TransformRecord(job_spec={**SPEC, **spec_over}, describe={**DESCRIBE, **describe_over}, backend="local",
                        input_digest="x")


def test_a_transform_result_names_a_known_backend():
    with pytest.raises(DataError, match="backend"):
        validated(dataclasses.replace(_transform(), backend="lokal"))


def test_a_missing_field_or_another_version_is_refused():
    raw = to_json(_transform())
    assert from_json(TransformRecord, raw, "t.json").backend == "local"
    del raw["input_digest"]
    with pytest.raises(DataError, match="t.json: field 'input_digest' is missing"):
        from_json(TransformRecord, raw, "t.json")
    raw = {**to_json(_transform()), "schema_version": SCHEMA_VERSION - 1}
    with pytest.raises(DataError, match="schema_version"):
        from_json(TransformRecord, raw, "t.json")


def test_records_are_redacted_of_url_credentials():
    m = dataclasses.replace(_manifest(), parameters={"endpoint": "http://AKID:SECRET@minio:9000"})
    assert to_json(m)["parameters"]["endpoint"] == "http://***@minio:9000"
