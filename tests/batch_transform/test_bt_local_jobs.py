"""The local runtime's divergences and local-job rules (batch_transform/README.md): objects
overlapping under MaxConcurrentTransforms, refusing an empty input, literal local prefixes,
confined manifest keys, owner identity, attaching to a running job, and wait deadlines."""

import json
import os
import threading

import pytest

from tests.batch_transform.bt_helpers import job_spec, outputs, put
from velibcast.batch_transform import local as L
from velibcast.batch_transform.errors import TransformJobTimeout
from velibcast.batch_transform.local import LocalRuntime
from velibcast.batch_transform.spec import SpecError
from velibcast.liveness import Owner
from velibcast.storage import Storage, join


def test_max_concurrent_transforms_overlaps_objects(rt, tmp_path):
    # Divergence 2: 4 objects, SplitType None, MCT 4: the four requests are in flight together.
    stats = tmp_path / "stats"
    stats.mkdir()
    put(rt.storage, str(tmp_path / "in"), {f"{i}.csv": "sleep0.5\n" for i in range(4)})
    spec = job_spec("overlap", str(tmp_path / "in"), str(tmp_path / "out"), MaxConcurrentTransforms=4,
                    TransformInput={"SplitType": "None"}, Environment={"TEST_STATS_DIR": str(stats)})
    assert rt.create_transform_job(spec)["TransformJobStatus"] == "Completed"
    [f] = list(stats.iterdir())
    assert json.loads(f.read_text()) == {"max_inflight": 4, "calls": 4}
    assert len(outputs(rt.storage, str(tmp_path / "out"))) == 4


def test_an_empty_input_prefix_is_refused_at_create(rt, tmp_path):
    # Divergence 3: the service answers CreateTransformJob with a ValidationException.
    (tmp_path / "in").mkdir()
    with pytest.raises(SpecError, match=r"S3Uri: No S3 objects found under S3 URL .*in.* given in input data source"):
        rt.create_transform_job(job_spec("nothing", str(tmp_path / "in"), str(tmp_path / "out")))
    assert rt.find_transform_job("nothing") is None


def test_a_local_prefix_is_literal_like_an_s3_prefix(rt, tmp_path):
    # Divergence 9: `.../in` matches the sibling `input2/y.csv`, as on S3.
    put(rt.storage, str(tmp_path), {"in/a.csv": "1\n", "input2/y.csv": "2\n", "other/z.csv": "3\n"})
    d = rt.create_transform_job(job_spec("literal", "file://" + str(tmp_path / "in"), str(tmp_path / "out")))
    assert d["TransformJobStatus"] == "Completed"
    assert set(outputs(rt.storage, str(tmp_path / "out"))) == {"a.csv.out", "put2/y.csv.out"}


def test_a_relative_s3uri_names_outputs_by_their_relative_key(rt, tmp_path, monkeypatch):
    put(rt.storage, str(tmp_path / "in"), {"a.csv": "1\n"})
    monkeypatch.chdir(tmp_path)
    d = rt.create_transform_job(job_spec("relative", "in/", "out"))
    assert d["TransformJobStatus"] == "Completed"
    assert set(outputs(rt.storage, str(tmp_path / "out"))) == {"a.csv.out"}


@pytest.mark.parametrize("entry", ["../victim/secret.csv", "a/../../victim/secret.csv", "/etc/passwd"])
def test_manifest_keys_stay_under_their_prefix(rt, tmp_path, entry):
    put(rt.storage, str(tmp_path), {"data/p/a.csv": "1\n", "data/victim/secret.csv": "42\n"})
    manifest = str(tmp_path / "manifest.json")
    rt.storage.write_text(manifest, json.dumps([{"prefix": str(tmp_path / "data" / "p") + "/"}, "a.csv", entry]))
    spec = job_spec("escape", manifest, str(tmp_path / "out" / "o"), TransformInput={
        "DataSource": {"S3DataSource": {"S3DataType": "ManifestFile", "S3Uri": manifest}}})
    with pytest.raises(SpecError, match=r"manifest entry 2 .*must stay under the prefix"):
        rt.create_transform_job(spec)
    assert not (tmp_path / "out").exists()


def test_an_s3_key_with_dot_dot_cannot_write_outside_the_output_path(rt, tmp_path):
    put(rt.storage, str(tmp_path / "in"), {"a.csv": "1\n"})
    objects = [L._Object(str(tmp_path / "in" / "a.csv"), "../escape/a.csv", "a.csv")]
    with pytest.raises(SpecError, match="must stay under the prefix"):
        L._confined(objects, "S3Uri")


def test_a_job_whose_owner_pid_was_reused_reads_as_failed(rt, tmp_path):
    state = {**job_spec("reused", "s3://b/in", "s3://b/out"), "TransformJobStatus": "InProgress",
             "CreationTime": "2026-01-01T00:00:00+00:00", "LocalOwner": {**Owner.current().to_json(), "start_ticks": "1"}}
    rt.storage.write_text(rt._state_uri("reused"), json.dumps(state))
    d = rt.describe_transform_job("reused")
    assert d["TransformJobStatus"] == "Failed" and "ended before the job did" in d["FailureReason"]


def test_a_second_run_of_the_same_job_attaches_instead_of_resource_in_use(tmp_path, model_tar):
    put(Storage(), str(tmp_path / "in"), {"a.csv": "sleep1\n2\n"})
    spec = job_spec("same-night", str(tmp_path / "in"), str(tmp_path / "out"))
    first, second = (LocalRuntime(Storage(), str(tmp_path / "state")) for _ in range(2))
    for r in (first, second):
        r.create_model("test-model", model_tar)
    started = threading.Event()
    result = {}
    first_thread = threading.Thread(target=lambda: result.setdefault("first", first.run_transform_job(spec)))
    first_thread.start()
    while not os.path.exists(first._state_uri("same-night")):  # the first run has created the job
        started.wait(0.01)
    second.submit_transform_job(spec)          # the race: created between our find and create
    d = second.run_transform_job(spec)          # and the plain path: find InProgress -> attach
    first_thread.join()
    assert d["TransformJobStatus"] == result["first"]["TransformJobStatus"] == "Completed"
    assert outputs(Storage(), str(tmp_path / "out")) == {"a.csv.out": "0\n2\n\n"}
    first.close()
    second.close()


def test_wait_has_a_deadline_from_the_runtime(rt):
    ticks = iter(range(0, 10_000, 5))
    state = {**job_spec("forever", "s3://b/in", "s3://b/out"), "TransformJobStatus": "InProgress",
             "CreationTime": "2026-01-01T00:00:00+00:00", "LocalOwner": Owner.current().to_json()}
    rt.storage.write_text(rt._state_uri("forever"), json.dumps(state))
    slow = LocalRuntime(rt.storage, rt.state_root, wait_deadline_s=60, clock=lambda: next(ticks), sleep=lambda s: None)
    with pytest.raises(TransformJobTimeout, match="forever still InProgress after 60 s"):
        slow.wait("forever")


def test_a_multi_range_filter_creates_the_job_and_fails_each_object_logged(rt, tmp_path):
    # Divergence 7, the service's timing (aws/sagemaker-python-sdk#1112).
    put(rt.storage, str(tmp_path / "in"), {"a.csv": "1,2,3,4,5,6\n"})
    spec = job_spec("ranges", str(tmp_path / "in"), str(tmp_path / "out"),
                    DataProcessing={"InputFilter": "$[0:1, 4:]"})
    d = rt.create_transform_job(spec)
    assert d["TransformJobStatus"] == "Failed" and "only single range filters are supported" in d["FailureReason"]
    log = rt.storage.read_text(join(rt.state_root, "transform-jobs", "ranges.log"))
    assert "a.csv: ClientError: " in log and "Invalid JsonPath: $[0:1, 4:]" in log


def test_multi_range_refuse_setting_refuses_at_create(tmp_path, model_tar):
    from velibcast.batch_transform.dataplane import DataPlaneSettings
    rt = LocalRuntime(Storage(), str(tmp_path / "state"), DataPlaneSettings(multi_range_filters="refuse"))
    rt.create_model("test-model", model_tar)
    put(rt.storage, str(tmp_path / "in"), {"a.csv": "1\n"})
    with pytest.raises(SpecError, match="DataProcessing.InputFilter: .*only single range"):
        rt.create_transform_job(job_spec("ranges", str(tmp_path / "in"), str(tmp_path / "out"),
                                         DataProcessing={"InputFilter": "$[0:1, 4:]"}))
    rt.close()


def test_an_input_bucket_that_does_not_exist_is_refused_at_create(s3_root, model_tar, tmp_path):
    rt = LocalRuntime(Storage(), str(tmp_path / "state"))
    rt.create_model("test-model", model_tar)
    with pytest.raises(SpecError, match=r"S3Uri: cannot list s3://no-such-bucket-velibcast/in"):
        rt.create_transform_job(job_spec("nobucket", "s3://no-such-bucket-velibcast/in", join(s3_root, "out")))
    rt.close()


@pytest.mark.parametrize("doc", [[{"prefix": 7}, "a.csv"], [{"prefix": "p/"}, "a.csv", 5], {"prefix": "p/"}, []])
def test_a_malformed_manifest_is_refused_at_create_even_under_python_O(rt, tmp_path, doc):
    """Shape checks are explicit (not `assert`, which `python -O` strips)."""
    manifest = str(tmp_path / "manifest.json")
    rt.storage.write_text(manifest, json.dumps(doc))
    spec = job_spec("bad-manifest", manifest, str(tmp_path / "out"), TransformInput={
        "DataSource": {"S3DataSource": {"S3DataType": "ManifestFile", "S3Uri": manifest}}})
    with pytest.raises(SpecError, match="not a manifest"):
        rt.create_transform_job(spec)
    assert not (tmp_path / "out").exists()


def test_a_job_whose_owner_ran_under_another_boot_reads_as_failed(rt):
    """A machine restarted while the job ran: pids and start times count again from zero, so the
    recorded pid and start time may match a process of this boot by chance."""
    state = {**job_spec("rebooted", "s3://b/in", "s3://b/out"), "TransformJobStatus": "InProgress",
             "CreationTime": "2026-01-01T00:00:00+00:00",
             "LocalOwner": {**Owner.current().to_json(), "boot_id": "a-boot-before-a-restart"}}
    rt.storage.write_text(rt._state_uri("rebooted"), json.dumps(state))
    d = rt.describe_transform_job("rebooted")
    assert d["TransformJobStatus"] == "Failed" and "restarted" in d["FailureReason"]
