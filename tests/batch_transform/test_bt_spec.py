"""Job spec validation against CreateTransformJob's limits (BTS §1), errors naming field and limit."""

import copy
from typing import Any

import pytest

from velibcast.batch_transform.spec import SpecError, service_model, validate_job_spec

BASE = {
    "TransformJobName": "velib-nightly-2022-05-26",
    "ModelName": "velib-lstm-v1",
    "TransformInput": {
        "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://bucket/inputs/"}},
        "ContentType": "text/csv",
        "SplitType": "Line",
    },
    "TransformOutput": {"S3OutputPath": "s3://bucket/outputs/", "Accept": "text/csv", "AssembleWith": "Line"},
    "TransformResources": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1},
    "BatchStrategy": "MultiRecord",
    "MaxPayloadInMB": 6,
    "DataProcessing": {"InputFilter": "$[1:]", "OutputFilter": "$[0,-3:]", "JoinSource": "Input"},
}


def with_(path: str, value):
    d = copy.deepcopy(BASE)
    *parents, last = path.split(".")
    cur: Any = d
    for p in parents:
        cur = cur.setdefault(p, {})
    if value is _DEL:
        cur.pop(last)
    else:
        cur[last] = value
    return d


_DEL = object()


def bad(path, value, field, limit_fragment, **kw):
    with pytest.raises(SpecError) as ei:
        validate_job_spec(with_(path, value), allow_file_uris=False, **kw)
    assert ei.value.field == field
    assert limit_fragment, "an empty fragment is in every message: name what the error must say"
    assert limit_fragment in str(ei.value)
    return ei.value


def test_a_valid_spec_passes_and_defaults_are_filled():
    d = copy.deepcopy(BASE)
    del d["DataProcessing"]
    out = validate_job_spec(d)
    assert out["DataProcessing"] == {"InputFilter": "$", "OutputFilter": "$", "JoinSource": "None"}
    assert out["TransformInput"]["CompressionType"] == "None"
    assert "MaxConcurrentTransforms" not in out  # unset stays unset: the container may choose
    assert d == {k: v for k, v in BASE.items() if k != "DataProcessing"}  # input untouched


def test_split_and_assemble_default_to_none():
    d = with_("TransformInput.SplitType", _DEL)
    d["TransformOutput"].pop("AssembleWith")
    d.pop("DataProcessing")  # a CSV join needs AssembleWith Line
    out = validate_job_spec(d)
    assert out["TransformInput"]["SplitType"] == "None" and out["TransformOutput"]["AssembleWith"] == "None"


@pytest.mark.parametrize("name,fragment", [
    ("", "length 0 is out of range (limit: 1-63 characters)"),
    ("x" * 64, "length 64 is out of range (limit: 1-63 characters)"),
    *[(name, "does not match the service pattern") for name in ["bad_name!", "-lead", "trail-", "a b"]],
])
def test_job_name_length_and_pattern(name, fragment):
    bad("TransformJobName", name, "TransformJobName", fragment)


def test_job_name_at_the_limits_passes():
    validate_job_spec(with_("TransformJobName", "a" * 63))
    validate_job_spec(with_("TransformJobName", "a--b"))


def test_model_name_pattern():
    bad("ModelName", "bad_model", "ModelName", "'bad_model' does not match the service pattern")


def test_required_fields():
    bad("TransformResources", _DEL, "TransformResources", "is required")
    bad("TransformOutput.S3OutputPath", _DEL, "TransformOutput.S3OutputPath", "is required")


def test_unknown_field_names_the_known_ones():
    e = bad("TransformInput.Contenttype", "text/csv", "TransformInput.Contenttype", "ContentType")
    assert "not a field" in str(e)


def test_filter_length_limit():
    bad("DataProcessing.InputFilter", "$[" + ",".join(["1"] * 31) + "]", "DataProcessing.InputFilter", "63")


def test_filter_with_unsupported_operator():
    e = bad("DataProcessing.OutputFilter", "$..id", "DataProcessing.OutputFilter", "supported operators")
    assert "recursive descent" in str(e)


def test_multi_range_filter_passes_create_as_on_the_service():
    # aws/sagemaker-python-sdk#1112: the job is created; its objects fail (test_bt_local_jobs).
    validate_job_spec(with_("DataProcessing.OutputFilter", "$[0:2,246:]"))
    bad("DataProcessing.OutputFilter", "$[0:2,246:]", "DataProcessing.OutputFilter", "one range per bracket",
        multi_range_filters="refuse")


@pytest.mark.parametrize("value,fragment", [(-1, "-1 is out of range (limit: 0-"), (101, "101 is out of range (limit: 0-100)")])
def test_max_payload_range(value, fragment):
    bad("MaxPayloadInMB", value, "MaxPayloadInMB", fragment)


def test_payload_times_concurrency_limit():
    d = with_("MaxConcurrentTransforms", 17)
    with pytest.raises(SpecError) as ei:
        validate_job_spec(d)
    assert ei.value.field == "MaxConcurrentTransforms" and "<= 100" in str(ei.value)
    validate_job_spec(with_("MaxConcurrentTransforms", 16))  # 16 x 6 = 96
    validate_job_spec({**with_("MaxConcurrentTransforms", 0), "MaxPayloadInMB": 100})


@pytest.mark.parametrize("path,value", [
    ("BatchStrategy", "Foo"),
    ("TransformInput.SplitType", "Lines"),
    ("TransformInput.CompressionType", "Zip"),
    ("TransformOutput.AssembleWith", "Newline"),
    ("DataProcessing.JoinSource", "Output"),
    ("TransformInput.DataSource.S3DataSource.S3DataType", "Folder"),
])
def test_enums(path, value):
    e = bad(path, value, path, "one of")
    assert value in str(e)


def test_instance_types_come_from_botocore():
    types = list(service_model().shape_for("TransformInstanceType").enum)
    assert "ml.m5.xlarge" in types and "ml.c5.2xlarge" in types and len(types) > 50
    bad("TransformResources.InstanceType", "ml.t2.medium", "TransformResources.InstanceType", "ml.m5.xlarge")


@pytest.mark.parametrize("count,fragment", [(0, "0 is out of range (limit: 1-"), (101, "101 is out of range (limit: 1-100)")])
def test_instance_count_range(count, fragment):
    bad("TransformResources.InstanceCount", count, "TransformResources.InstanceCount", fragment)


@pytest.mark.parametrize("key,value,limit", [
    ("InvocationsTimeoutInSeconds", 0, "1-3600"),
    ("InvocationsTimeoutInSeconds", 3601, "1-3600"),
    ("InvocationsMaxRetries", 4, "0-3"),
    ("InvocationsMaxRetries", -1, "0-3"),
])
def test_model_client_config_ranges(key, value, limit):
    bad(f"ModelClientConfig.{key}", value, f"ModelClientConfig.{key}", limit)


def test_environment_limits():
    bad("Environment", {f"K{i}": "v" for i in range(17)}, "Environment", "16")
    bad("Environment", {"1BAD": "v"}, "Environment key '1BAD'", "'1BAD' does not match the service pattern")
    bad("Environment", {"OK": "x" * 10241}, "Environment.OK", "10240")


def test_types_are_checked():
    bad("MaxPayloadInMB", "6", "MaxPayloadInMB", "must be an integer, got '6'")
    bad("TransformResources.InstanceCount", True, "TransformResources.InstanceCount", "must be an integer, got True")


def test_file_uris_only_for_the_local_runtime():
    d = with_("TransformInput.DataSource.S3DataSource.S3Uri", "file:///tmp/in")
    validate_job_spec(d, allow_file_uris=True)
    with pytest.raises(SpecError, match="pattern"):
        validate_job_spec(d, allow_file_uris=False)
    validate_job_spec(with_("TransformOutput.S3OutputPath", "/tmp/out"), allow_file_uris=True)


# ------------------------------------------------------------ divergences (batch_transform/README.md)
def test_csv_join_needs_assemble_with_line():
    # Divergence 4: with AssembleWith None the joined records were glued together.
    e = bad("TransformOutput.AssembleWith", "None", "TransformOutput.AssembleWith", "Line")
    assert "JoinSource=Input" in str(e)


def test_a_join_needs_accept_equal_to_content_type():
    e = bad("TransformOutput.Accept", "application/json", "TransformOutput.Accept", "text/csv")
    assert "JoinSource=Input" in str(e)


def test_a_join_needs_a_content_type_it_supports():
    d = with_("TransformInput.ContentType", "application/x-npy")
    d["TransformOutput"]["Accept"] = "application/x-npy"
    with pytest.raises(SpecError) as ei:
        validate_job_spec(d)
    assert ei.value.field == "TransformInput.ContentType" and "application/jsonlines" in str(ei.value)


def test_json_join_with_split_none_and_assemble_none_is_valid():
    # AWS's Clarify JSON notebook: SplitType None and AssembleWith None "required if join_source is set".
    d = with_("TransformInput.ContentType", "application/json")
    d["TransformInput"]["SplitType"] = "None"
    d["TransformOutput"].update(Accept="application/json", AssembleWith="None")
    d["DataProcessing"] = {"JoinSource": "Input"}
    validate_job_spec(d)


def test_payload_times_concurrency_uses_the_default_payload_when_unset():
    # Divergence 11: MCT 50 with MaxPayloadInMB unset is 50 x 6 MB.
    d = with_("MaxConcurrentTransforms", 50)
    d.pop("MaxPayloadInMB")
    with pytest.raises(SpecError) as ei:
        validate_job_spec(d)
    assert ei.value.field == "MaxConcurrentTransforms" and "50 x MaxPayloadInMB 6 (default)" in str(ei.value)


def test_an_empty_filter_is_the_root():
    # Divergence 11: the service model allows length 0.
    d = validate_job_spec(with_("DataProcessing.InputFilter", ""))
    assert d["DataProcessing"]["InputFilter"] == ""
