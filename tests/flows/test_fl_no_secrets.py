"""No credential reaches the store, the logs or the Prefect API.

AWS credentials get distinctive values; the pieces that write manifests, stage records,
forecasts, accuracy, the PNG, logs and artifacts run under a Prefect flow against S3
(moto server); then every object of the bucket (decompressed and decoded: Parquet is
zstd-compressed, so a raw byte search would miss a leak), every log record (what the
console shows), and the Prefect API's logs, artifacts and flow-run parameters are searched.
(No capfd here: Prefect's console handler would keep its per-test stream after it closes.)
"""

import gzip
import io
import json
import logging
import string
import subprocess
import sys
import tarfile
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as hs

from velibcast import storage as st
from velibcast.config import load_config
from velibcast.errors import ConfigError, StorageError
from velibcast.flows import manifest
from velibcast.run_records import dumps
from velibcast.timeutil import UTC

SECRETS = {
    "AWS_SECRET_ACCESS_KEY": "SECRETdoNotLeak123",
    "AWS_SESSION_TOKEN": "TOKENdoNotLeak456",
    "AWS_ACCESS_KEY_ID": "AKIDdoNotLeak789",
}


@pytest.fixture
def secret_env(aws_env, monkeypatch):
    for k, v in SECRETS.items():
        monkeypatch.setenv(k, v)
    return aws_env


@pytest.fixture
def secret_root(secret_env):
    import boto3

    bucket = f"velib-{uuid.uuid4().hex[:12]}"
    boto3.client("s3").create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-3"})
    return f"s3://{bucket}/root"


class Recorder(logging.Handler):
    """Every record, formatted with its arguments, from the loggers a run writes to."""

    NAMES = ("", "prefect", "prefect.flow_runs", "prefect.task_runs", "velibcast", "botocore", "boto3")

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(f"{record.name} {record.getMessage()} {record.exc_text or ''}")

    def attach(self):
        # Prefect configures its loggers when a flow run starts, dropping foreign handlers
        # (and its loggers do not propagate): attach from inside the run as well.
        for n in self.NAMES:
            if self not in logging.getLogger(n).handlers:
                logging.getLogger(n).addHandler(self)

    def detach(self):
        for n in self.NAMES:
            logging.getLogger(n).removeHandler(self)


@pytest.fixture
def recorded_logs():
    rec = Recorder()
    rec.attach()
    yield rec
    rec.detach()


def decoded(name: str, data: bytes) -> list[bytes]:
    """The object as stored, plus what a reader would decode from it."""
    out = [data]
    if name.endswith(".parquet"):
        out.append(json.dumps(pq.read_table(io.BytesIO(data)).to_pylist(), default=str).encode())
    elif name.endswith(".tar.gz"):
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            out += [f.read() for m in tar.getmembers() if m.isfile() and (f := tar.extractfile(m)) is not None]
    elif name.endswith(".gz"):
        out.append(gzip.decompress(data))
    return out


def leaks_in(text: bytes | str) -> list[str]:
    if isinstance(text, str):
        text = text.encode()
    return [k for k, v in SECRETS.items() if v.encode() in text]


def scan_bucket(storage, root) -> dict[str, list[str]]:
    bucket_root = "s3://" + st.split_s3(root)[0] + "/"
    found = {}
    n = 0
    for o in storage.list(bucket_root):
        n += 1
        for blob in decoded(o.uri, storage.read_bytes(o.uri)):
            if leaks_in(blob):
                found[o.uri] = leaks_in(blob)
    assert n > 0
    return found


def test_config_cannot_carry_credentials():
    """Credentials come from the AWS chain only: a config naming one is refused when it is
    loaded, before any run starts, and the refusal does not echo it."""
    for key in ("aws_secret_access_key", "aws_access_key_id", "aws_session_token"):
        with pytest.raises(ConfigError, match="unknown s3 client parameter") as info:
            load_config(None, overrides={"store": {"root": "s3://b/r", "s3": {key: SECRETS["AWS_SECRET_ACCESS_KEY"]}}})
        assert key in str(info.value) and not leaks_in(str(info.value))


def test_storage_errors_name_the_object_not_the_credentials(secret_env):
    storage = st.Storage()
    with pytest.raises(StorageError) as info:
        storage.read_bytes("s3://no-such-bucket-velibcast/k")
    assert "no-such-bucket-velibcast" in str(info.value) and not leaks_in(str(info.value))


def test_no_secret_in_run_outputs_logs_or_prefect(secret_root, tmp_path, recorded_logs):
    # the hand-built night of the scoring tests, published to S3 with these credentials
    import importlib.util
    from pathlib import Path

    from prefect import flow, get_run_logger

    from velibcast.flows import report_png, score, stages

    spec = importlib.util.spec_from_file_location("night", Path(__file__).with_name("test_fl_score_report.py"))
    night = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(night)

    cfg = load_config(None, overrides={"store": {"root": secret_root,
                                                 "s3": {"region_name": "eu-west-3", "max_attempts": 3}}})

    @flow(name="no-secrets")
    def run(root: str) -> str:
        recorded_logs.attach()
        logger = get_run_logger()
        storage = cfg.storage()
        night.write_captures(storage, root, night.LAST_TARGET + timedelta(hours=3))
        night.publish_night(storage, root)
        started = datetime.now(UTC)
        m = {"run_id": "run-1", "started_at": started.isoformat(), "finished_at": started.isoformat(),
             "parameters": {"run_date": night.RUN_DATE.isoformat(), "config": cfg.data, "config_source": cfg.source},
             "counts": {"stations_seen": 5, "windows_emitted": 120, "windows_skipped_by_reason": {"stale_history": 3},
                        "predictions_written": 120, "forecast_rows": 360},
             "cost_estimate": {"total": 0.01}, "outputs": {"forecast_parquet": "x", "run_dir": manifest.run_dir(root, "run-1")}}
        uri = manifest.write(storage, root, "run-1", m)
        logger.info("manifest %s, config %s", uri, cfg.data)
        res = score.score_run(storage, cfg, night.RUN_DATE)
        logger.info("score %s", res)
        png = report_png.render_run_png(storage, root, night.RUN_DATE)
        logger.info("png %s", png["uri"])
        ctx = type("Ctx", (), {"spec": type("S", (), {"label": night.RUN_DATE.isoformat()})()})()
        stages.report_artifacts(ctx, m)
        try:
            storage.read_bytes(st.join(root, "missing"))
        except StorageError as e:
            logger.warning("expected: %s", e)
        return uri

    state = run(secret_root, return_state=True)
    assert state.is_completed(), state
    storage = cfg.storage()
    assert storage.exists(st.join(secret_root, "runs", "run-1", "report.png"))
    assert storage.exists(score.accuracy_uri(secret_root, "evaluation", night.RUN_DATE))

    assert scan_bucket(storage, secret_root) == {}
    assert recorded_logs.lines and not [ln for ln in recorded_logs.lines if leaks_in(ln)]

    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(state.state_details.flow_run_id)
        logs = client.read_logs()
        artifacts = client.read_artifacts()
    assert logs and artifacts
    api_text = json.dumps([flow_run.model_dump(mode="json")] + [x.model_dump(mode="json") for x in logs + artifacts])
    assert not leaks_in(api_text)


def test_no_secret_in_a_whole_nightly_run(secret_root, tmp_path, recorded_logs):
    """The real flow on S3: windows, the local Batch Transform runtime (its server processes
    inherit the environment), join, publish, manifest, artifact."""
    import yaml

    from velibcast.flows.nightly import nightly
    from velibcast.training import package
    from velibcast.training.synthetic import untrained_archive

    storage = st.Storage()
    sample = Path(__file__).resolve().parents[2] / "sample_data" / "velib" / "snapshots"
    for p in sorted(sample.rglob("*.jsonl.gz")):
        if "2022-05-25T03" <= p.name[:13] <= "2022-05-26T09":
            storage.write_bytes(st.join(secret_root, "velib", "snapshots", p.name), p.read_bytes())
    model_uri = package.write_model(storage, secret_root, "untrained-0", untrained_archive())
    cfg_path = tmp_path / "secret.yaml"
    cfg_path.write_text(yaml.safe_dump({
        "store": {"root": secret_root, "s3": {"region_name": "eu-west-3"}},
        "model": {"uri": model_uri},
        "transform": {"backend": "local", "max_concurrent_transforms": 2},
    }))
    recorded_logs.attach()
    res = nightly(config=str(cfg_path), start=datetime(2022, 5, 26, 5, tzinfo=UTC),
                  end=datetime(2022, 5, 26, 7, tzinfo=UTC))
    assert res["counts"]["forecast_rows"] > 0
    assert any("flow_runs" in ln for ln in recorded_logs.lines), "the run's own log records were recorded"

    assert scan_bucket(storage, secret_root) == {}
    assert not [ln for ln in recorded_logs.lines if leaks_in(ln)]
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        api_text = json.dumps([x.model_dump(mode="json") for x in client.read_logs() + client.read_artifacts()])
    assert not leaks_in(api_text)


# An AWS secret access key: 40 characters of base64's alphabet, "/" and "+" included, "=" padding.
AWS_SECRET = hs.text(string.ascii_letters + string.digits + "+/=", min_size=40, max_size=40)
AWS_KEY_ID = hs.text(string.ascii_uppercase + string.digits, min_size=20, max_size=20)


@settings(max_examples=50, deadline=None)
@given(key=AWS_KEY_ID, secret=AWS_SECRET)
def test_a_secret_in_an_endpoint_url_reaches_no_record_and_no_error_line(key, secret):
    """Whatever characters the secret holds: the config recorded in a manifest (and the Parquet
    metadata that embeds it) and the error a store call raises carry neither key nor secret."""
    url = f"http://{key}:{secret}@127.0.0.1:1"
    cfg = load_config(None, overrides={"store": {"root": "s3://velib-bucket/root",
                                                 "s3": {"endpoint_url": url, "max_attempts": 1}}})
    with pytest.raises(StorageError) as info:
        cfg.storage().read_bytes("s3://velib-bucket/root/x")
    for text in (dumps({"parameters": {"config": cfg.data}}), str(info.value)):
        assert secret not in text and key not in text, text


def test_the_cli_error_line_does_not_carry_a_secret_with_a_slash(tmp_path):
    key, secret = "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCY+EXAMPLEK=="
    cfg = tmp_path / "leaky.yaml"
    cfg.write_text(yaml.safe_dump({"store": {"root": "s3://velib-bucket/root", "s3": {
        "endpoint_url": f"http://{key}:{secret}@127.0.0.1:1", "max_attempts": 1}}}))
    res = subprocess.run([sys.executable, "-m", "velibcast.flows.cli", "run", "--config", str(cfg),
                          "--run-date", "2022-05-26"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "error:" in res.stderr, res.stderr
    assert secret not in res.stderr + res.stdout and key not in res.stderr + res.stdout
