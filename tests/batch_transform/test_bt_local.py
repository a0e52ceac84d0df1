"""The local runtime end to end: real server processes, local paths and S3 on a moto server."""

import gzip
import json
import threading

import pytest

from tests.batch_transform.bt_helpers import job_spec, log_of, outputs, put
from tests.helpers import wait_until
from velibcast import constants as C
from velibcast.batch_transform.errors import ResourceInUse, ResourceNotFound
from velibcast.batch_transform.local import (
    LocalRuntime,
    container_environment,
    distribute,
    resolve_batch_parameters,
)
from velibcast.batch_transform.spec import SpecError
from velibcast.storage import Storage, join

NIGHTLY_FILTERS = {"InputFilter": "$[1:]", "OutputFilter": "$[0,-1:]", "JoinSource": "Input"}


def test_nightly_shape_job_with_join_and_filters(rt, tmp_path):
    inp, out = str(tmp_path / "in"), str(tmp_path / "out")
    put(rt.storage, inp, {"a.csv": "st1@t,1,2,3\nst2@t,4,5,6\n", "sub/b.csv": "st3@t,1,1,1\n"})
    d = rt.create_transform_job(job_spec("nightly", inp, out, DataProcessing=NIGHTLY_FILTERS))
    assert d["TransformJobStatus"] == "Completed" and "FailureReason" not in d
    assert outputs(rt.storage, out) == {"a.csv.out": "st1@t,6\nst2@t,15\n", "sub/b.csv.out": "st3@t,3\n"}
    assert d["TransformStartTime"] <= d["TransformEndTime"]
    assert d["DataProcessing"] == NIGHTLY_FILTERS
    assert set(d["LocalTimings"]) == {"ContainerStartSeconds", "ProcessingSeconds"}
    assert "MaxConcurrentTransforms=1, MaxPayloadInMB=6, BatchStrategy=MULTI_RECORD" in log_of(rt, "nightly")


def test_same_job_through_s3_on_moto(s3_root, model_tar, tmp_path):
    rt = LocalRuntime(Storage(), join(s3_root, "state"))
    rt.create_model("test-model", model_tar)
    inp, out = join(s3_root, "in"), join(s3_root, "out")
    put(rt.storage, inp, {"a.csv": "st1@t,1,2,3\n"})
    put(rt.storage, join(s3_root, "in_other"), {"c.csv": "st9@t,1,1,1\n"})  # the prefix is literal
    d = rt.create_transform_job(job_spec("s3job", inp, out, DataProcessing=NIGHTLY_FILTERS))
    assert d["TransformJobStatus"] == "Completed"
    assert outputs(rt.storage, out) == {"a.csv.out": "st1@t,6\n", "_other/c.csv.out": "st9@t,3\n"}
    assert rt.describe_transform_job("s3job")["TransformJobStatus"] == "Completed"
    rt.close()


def test_failed_object_gets_no_output_and_the_others_complete(rt, tmp_path):
    inp, out = str(tmp_path / "in"), str(tmp_path / "out")
    put(rt.storage, inp, {"a.csv": "1,1\n", "b.csv": "2,2\nboom\n", "c.csv": "3,3\n"})
    d = rt.create_transform_job(job_spec("partial", inp, out))
    assert d["TransformJobStatus"] == "Failed"
    assert set(outputs(rt.storage, out)) == {"a.csv.out", "c.csv.out"}
    assert "b.csv" in d["FailureReason"] and "HTTP 400" in d["FailureReason"]
    log = log_of(rt, "partial")
    assert f"[sagemaker logs]: {tmp_path}/in/b.csv: ClientError: 400" in log
    assert "boom: bad record" in log


def test_failure_log_names_bucket_and_key_on_s3(s3_root, model_tar):
    rt = LocalRuntime(Storage(), join(s3_root, "state"))
    rt.create_model("test-model", model_tar)
    put(rt.storage, join(s3_root, "in"), {"x.csv": "crash\n"})
    d = rt.create_transform_job(job_spec("s3fail", join(s3_root, "in"), join(s3_root, "out"),
                                         ModelClientConfig={"InvocationsMaxRetries": 0}))
    bucket_key = join(s3_root, "in", "x.csv")[len("s3://"):]
    assert d["TransformJobStatus"] == "Failed"
    assert f"[sagemaker logs]: {bucket_key}: ClientError: 500" in log_of(rt, "s3fail")
    rt.close()


def test_record_count_mismatch_fails_the_object_naming_the_line(rt, tmp_path):
    inp, out = str(tmp_path / "in"), str(tmp_path / "out")
    put(rt.storage, inp, {"a.csv": "1,1\n2,2\nextra,0\n"})
    d = rt.create_transform_job(job_spec("mismatch", inp, out, DataProcessing={"JoinSource": "Input"}))
    assert d["TransformJobStatus"] == "Failed"
    assert "a.csv lines 1-3: the container returned 4 record(s) for a mini-batch of 3" in d["FailureReason"]
    assert outputs(rt.storage, out) == {}


def test_duplicate_job_name_is_resource_in_use(rt, tmp_path):
    put(rt.storage, str(tmp_path / "in"), {"a.csv": "1\n"})
    spec = job_spec("dup", str(tmp_path / "in"), str(tmp_path / "out"))
    rt.create_transform_job(spec)
    with pytest.raises(ResourceInUse) as ei:
        rt.create_transform_job(spec)
    assert ei.value.code == "ResourceInUse"


def test_unknown_job_and_model(rt, tmp_path):
    with pytest.raises(ResourceNotFound):
        rt.describe_transform_job("nope")
    with pytest.raises(ResourceNotFound, match="create_model"):
        rt.create_transform_job({**job_spec("x", str(tmp_path), str(tmp_path)), "ModelName": "other"})


def test_invalid_spec_fails_before_anything_runs(rt, tmp_path):
    with pytest.raises(SpecError, match="MaxPayloadInMB"):
        rt.create_transform_job(job_spec("bad", str(tmp_path), str(tmp_path), MaxPayloadInMB=101))
    with pytest.raises(ResourceNotFound):
        rt.describe_transform_job("bad")


@pytest.mark.parametrize("split", ["RecordIO", "TFRecord"])
def test_binary_split_types_not_supported_locally(rt, tmp_path, split):
    spec = job_spec(f"bin-{split}", str(tmp_path), str(tmp_path), TransformInput={"SplitType": split})
    with pytest.raises(SpecError, match="not supported locally"):
        rt.create_transform_job(spec)


def test_manifest_file_gzip_and_single_record(rt, tmp_path):
    data = str(tmp_path / "data")
    put(rt.storage, data, {"p/a.csv.gz": gzip.compress(b"1,2\n3,4\n"), "p/skip.csv.gz": gzip.compress(b"9\n"),
                           "p/q/b.csv.gz": gzip.compress(b"5,5\n")})
    manifest = str(tmp_path / "manifest.json")
    rt.storage.write_text(manifest, json.dumps([{"prefix": data + "/p/"}, "a.csv.gz", "q/b.csv.gz"]))
    spec = job_spec("manifest", manifest, str(tmp_path / "out"), BatchStrategy="SingleRecord",
                    TransformInput={"DataSource": {"S3DataSource": {"S3DataType": "ManifestFile", "S3Uri": manifest}},
                                    "CompressionType": "Gzip"})
    d = rt.create_transform_job(spec)
    assert d["TransformJobStatus"] == "Completed"
    assert outputs(rt.storage, str(tmp_path / "out")) == {"a.csv.gz.out": "3\n\n7\n\n", "q/b.csv.gz.out": "10\n\n"}
    assert "BatchStrategy=SINGLE_RECORD" in log_of(rt, "manifest")


def test_bad_gzip_fails_its_object(rt, tmp_path):
    put(rt.storage, str(tmp_path / "in"), {"a.csv.gz": b"not gzip"})
    d = rt.create_transform_job(job_spec("badgz", str(tmp_path / "in"), str(tmp_path / "out"),
                                         TransformInput={"CompressionType": "Gzip"}))
    assert d["TransformJobStatus"] == "Failed" and "not valid gzip" in d["FailureReason"]


def test_a_record_over_max_payload_fails_its_object_only(rt, tmp_path):
    put(rt.storage, str(tmp_path / "in"), {"big.csv": "1\n" + "2" * (C.MB + 10) + "\n", "ok.csv": "1\n"})
    d = rt.create_transform_job(job_spec("big", str(tmp_path / "in"), str(tmp_path / "out"), MaxPayloadInMB=1))
    assert d["TransformJobStatus"] == "Failed" and "big.csv line 2" in d["FailureReason"]
    assert set(outputs(rt.storage, str(tmp_path / "out"))) == {"ok.csv.out"}


def test_container_environment_and_execution_parameters_precedence(rt, tmp_path):
    put(rt.storage, str(tmp_path / "in"), {"a.csv": "env\n"})
    container_prefs = {"MaxConcurrentTransforms": 3, "BatchStrategy": "SINGLE_RECORD", "MaxPayloadInMB": 2}
    spec = job_spec("env", str(tmp_path / "in"), str(tmp_path / "out"), MaxPayloadInMB=4,
                    Environment={C.EXECUTION_PARAMETERS_ENV: json.dumps(container_prefs)})
    d = rt.create_transform_job(spec)
    assert d["TransformJobStatus"] == "Completed"
    env_line = outputs(rt.storage, str(tmp_path / "out"))["a.csv.out"].strip()
    # Only the value the API set is passed; SAGEMAKER_BATCH always.
    assert env_line == "SAGEMAKER_BATCH=true;SAGEMAKER_MAX_PAYLOAD_IN_MB=4"
    # API (MaxPayloadInMB=4) > container (MCT 3, SINGLE_RECORD) > defaults.
    assert "MaxConcurrentTransforms=3, MaxPayloadInMB=4, BatchStrategy=SINGLE_RECORD" in log_of(rt, "env")


def test_resolve_batch_parameters():
    assert resolve_batch_parameters({}, {}) == (1, 6, "MultiRecord")
    assert resolve_batch_parameters({}, {"MaxConcurrentTransforms": 8, "BatchStrategy": "MultiRecord",
                                         "MaxPayloadInMB": 5}) == (8, 5, "MultiRecord")
    assert resolve_batch_parameters({"MaxConcurrentTransforms": 0}, {"MaxConcurrentTransforms": 4}) == (4, 6, "MultiRecord")
    assert resolve_batch_parameters({"MaxConcurrentTransforms": 2, "MaxPayloadInMB": 0, "BatchStrategy": "SingleRecord"},
                                    {"MaxConcurrentTransforms": 4, "MaxPayloadInMB": 5}) == (2, 0, "SingleRecord")


def test_container_environment_sets_the_three_values_only_when_given():
    assert container_environment({}, {"A": "1"}) == {"A": "1", "SAGEMAKER_BATCH": "true"}
    env = container_environment({"MaxConcurrentTransforms": 2, "BatchStrategy": "MultiRecord", "MaxPayloadInMB": 0,
                                 "Environment": {"B": "2"}}, {})
    assert env == {"B": "2", "SAGEMAKER_BATCH": "true", "SAGEMAKER_MAX_CONCURRENT_TRANSFORMS": "2",
                   "SAGEMAKER_BATCH_STRATEGY": "MULTI_RECORD", "SAGEMAKER_MAX_PAYLOAD_IN_MB": "0"}


def test_max_concurrent_transforms_requests_in_flight(rt, tmp_path):
    stats = tmp_path / "stats"
    stats.mkdir()
    put(rt.storage, str(tmp_path / "in"), {"a.csv": "sleep0.3\n" * 8})
    spec = job_spec("mct", str(tmp_path / "in"), str(tmp_path / "out"), BatchStrategy="SingleRecord",
                    MaxConcurrentTransforms=3, Environment={"TEST_STATS_DIR": str(stats)})
    assert rt.create_transform_job(spec)["TransformJobStatus"] == "Completed"
    [f] = list(stats.iterdir())
    assert json.loads(f.read_text())["max_inflight"] == 3


def test_objects_are_distributed_whole_across_instances(rt, tmp_path):
    put(rt.storage, str(tmp_path / "in"), {f"{i}.csv": "pid\npid\n" for i in range(4)})
    spec = job_spec("two", str(tmp_path / "in"), str(tmp_path / "out"), BatchStrategy="SingleRecord",
                    TransformResources={"InstanceType": "ml.m5.xlarge", "InstanceCount": 2})
    assert rt.create_transform_job(spec)["TransformJobStatus"] == "Completed"
    outs = outputs(rt.storage, str(tmp_path / "out"))
    pids_per_object = [set(v.split()) for v in outs.values()]
    assert all(len(p) == 1 for p in pids_per_object)          # never split across instances
    assert len(set.union(*pids_per_object)) == 2              # both instances worked
    assert log_of(rt, "two").count("MaxConcurrentTransforms=") == 2   # one line per instance


def test_distribute_round_robin():
    assert distribute(list("abcde"), 2) == [["a", "c", "e"], ["b", "d"]]


def test_retries_then_failure_on_5xx(rt, tmp_path):
    stats = tmp_path / "stats"
    stats.mkdir()
    put(rt.storage, str(tmp_path / "in"), {"a.csv": "crash\n"})
    spec = job_spec("retry", str(tmp_path / "in"), str(tmp_path / "out"), Environment={"TEST_STATS_DIR": str(stats)},
                    ModelClientConfig={"InvocationsMaxRetries": 2, "InvocationsTimeoutInSeconds": 30})
    assert rt.create_transform_job(spec)["TransformJobStatus"] == "Failed"
    [f] = list(stats.iterdir())
    assert json.loads(f.read_text())["calls"] == 3


def test_4xx_is_not_retried_by_default(rt, tmp_path):
    stats = tmp_path / "stats"
    stats.mkdir()
    put(rt.storage, str(tmp_path / "in"), {"a.csv": "boom\n"})
    spec = job_spec("noretry", str(tmp_path / "in"), str(tmp_path / "out"), Environment={"TEST_STATS_DIR": str(stats)})
    rt.create_transform_job(spec)
    [f] = list(stats.iterdir())
    assert json.loads(f.read_text())["calls"] == 1


def test_invocation_timeout_logs_no_response(rt, tmp_path):
    put(rt.storage, str(tmp_path / "in"), {"a.csv": "sleep3\n"})
    spec = job_spec("timeout", str(tmp_path / "in"), str(tmp_path / "out"),
                    ModelClientConfig={"InvocationsTimeoutInSeconds": 1, "InvocationsMaxRetries": 0})
    d = rt.create_transform_job(spec)
    assert d["TransformJobStatus"] == "Failed"
    assert "a.csv: Unable to get response from algorithm" in log_of(rt, "timeout")


def test_stop_removes_outputs_and_ends_stopped(rt, tmp_path):
    put(rt.storage, str(tmp_path / "in"), {"a.csv": "1\n", "b.csv": "sleep0.2\n" * 20})
    spec = job_spec("stopme", str(tmp_path / "in"), str(tmp_path / "out"), BatchStrategy="SingleRecord")
    result = {}
    t = threading.Thread(target=lambda: result.setdefault("d", rt.create_transform_job(spec)))
    t.start()
    # stop once a.csv's output is written and b.csv is still running: Stopped must remove it
    wait_until(lambda: (tmp_path / "out" / "a.csv.out").exists(), "a.csv.out is written")
    rt.stop_transform_job("stopme")
    t.join()
    assert result["d"]["TransformJobStatus"] == "Stopped"
    assert outputs(rt.storage, str(tmp_path / "out")) == {}


def test_server_that_cannot_start_fails_the_job(tmp_path):
    import io
    import tarfile
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        src = b"raise ImportError('broken model code')\n"
        info = tarfile.TarInfo("code/inference.py")
        info.size = len(src)
        tar.addfile(info, io.BytesIO(src))
    (tmp_path / "m.tar.gz").write_bytes(buf.getvalue())
    rt = LocalRuntime(Storage(), str(tmp_path / "state"))
    rt.create_model("test-model", str(tmp_path / "m.tar.gz"))
    put(rt.storage, str(tmp_path / "in"), {"a.csv": "1\n"})
    d = rt.create_transform_job(job_spec("broken", str(tmp_path / "in"), str(tmp_path / "out")))
    assert d["TransformJobStatus"] == "Failed" and "broken model code" in d["FailureReason"]
    rt.close()


def test_settings_reach_the_runtime(tmp_path, model_tar):
    from velibcast.batch_transform.dataplane import DataPlaneSettings
    rt = LocalRuntime(Storage(), str(tmp_path / "state"), DataPlaneSettings(slice_end_inclusive=False))
    rt.create_model("test-model", model_tar)
    put(rt.storage, str(tmp_path / "in"), {"a.csv": "id,1,2,4\n"})
    spec = job_spec("excl", str(tmp_path / "in"), str(tmp_path / "out"),
                    DataProcessing={"InputFilter": "$[1:3]", "JoinSource": "Input", "OutputFilter": "$[0,-1]"})
    assert rt.create_transform_job(spec)["TransformJobStatus"] == "Completed"
    assert outputs(rt.storage, str(tmp_path / "out")) == {"a.csv.out": "id,3\n"}   # exclusive end: 1+2
    rt.close()


def test_single_object_uri_is_named_by_its_basename(rt, tmp_path):
    put(rt.storage, str(tmp_path / "in"), {"test_no_header.csv": "1,2\n"})
    d = rt.create_transform_job(job_spec("single", str(tmp_path / "in" / "test_no_header.csv"), str(tmp_path / "out")))
    assert d["TransformJobStatus"] == "Completed"
    assert outputs(rt.storage, str(tmp_path / "out")) == {"test_no_header.csv.out": "3\n\n"}


def test_empty_object_gives_an_empty_output_without_a_request(rt, tmp_path):
    put(rt.storage, str(tmp_path / "in"), {"empty.csv": b"", "a.csv": "1\n"})
    d = rt.create_transform_job(job_spec("empty", str(tmp_path / "in"), str(tmp_path / "out")))
    assert d["TransformJobStatus"] == "Completed"
    assert outputs(rt.storage, str(tmp_path / "out"))["empty.csv.out"] == ""


def test_augmented_manifest_not_supported_locally(rt, tmp_path):
    spec = job_spec("aug", str(tmp_path), str(tmp_path), TransformInput={
        "DataSource": {"S3DataSource": {"S3DataType": "AugmentedManifestFile", "S3Uri": str(tmp_path)}}})
    with pytest.raises(SpecError, match="AugmentedManifestFile is not supported locally"):
        rt.create_transform_job(spec)


def test_max_payload_zero_sends_chunked_without_limit(rt, tmp_path):
    put(rt.storage, str(tmp_path / "in"), {"a.csv": "1,2\n" * 1000})
    d = rt.create_transform_job(job_spec("chunked", str(tmp_path / "in"), str(tmp_path / "out"), MaxPayloadInMB=0))
    assert d["TransformJobStatus"] == "Completed"
    assert outputs(rt.storage, str(tmp_path / "out"))["a.csv.out"] == "3\n" * 1000 + "\n"
    assert "MaxPayloadInMB=0" in log_of(rt, "chunked")


def test_a_csv_header_is_just_another_record(rt, tmp_path):
    put(rt.storage, str(tmp_path / "in"), {"a.csv": "a,b\n1,2\n"})
    d = rt.create_transform_job(job_spec("header", str(tmp_path / "in"), str(tmp_path / "out"),
                                         ModelClientConfig={"InvocationsMaxRetries": 0}))
    assert d["TransformJobStatus"] == "Failed"   # the model cannot read "a" as a number
    assert "ClientError: 500" in log_of(rt, "header")


def test_an_internal_fault_ends_the_job_failed(rt, tmp_path, monkeypatch):
    from velibcast.batch_transform import dataplane

    def broken(*a, **k):
        raise RuntimeError("bug in the runtime")
    monkeypatch.setattr(dataplane, "prepare", broken)
    put(rt.storage, str(tmp_path / "in"), {"a.csv": "1\n"})
    d = rt.create_transform_job(job_spec("internal", str(tmp_path / "in"), str(tmp_path / "out")))
    assert d["TransformJobStatus"] == "Failed"
    assert d["FailureReason"] == "InternalServerError: RuntimeError: bug in the runtime"
