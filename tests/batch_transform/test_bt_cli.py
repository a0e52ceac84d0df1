"""`transform-job run|describe` and `serve` wiring, through a real argparse tree."""

import argparse
import json
import subprocess
import sys

import pytest

from tests.batch_transform.bt_helpers import outputs, put
from tests.helpers import wait_until
from velibcast.batch_transform import cli
from velibcast.batch_transform.local import LocalRuntime
from velibcast.errors import ConfigError
from velibcast.flows.cli import main as velibcast_main
from velibcast.storage import Storage


def parse(argv):
    p = argparse.ArgumentParser()
    cli.register(p.add_subparsers(dest="command", required=True))
    return p.parse_args(argv)


def test_run_and_describe(tmp_path, model_tar, make_spec, capsys):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.csv").write_text("id1,1,2\n")
    spec = make_spec("cli-job", str(tmp_path / "in"), str(tmp_path / "out"),
                     DataProcessing={"InputFilter": "$[1:]", "JoinSource": "Input"})
    (tmp_path / "job.json").write_text(json.dumps(spec))
    state = str(tmp_path / "state")
    args = parse(["transform-job", "run", "--cli-input-json", f"file://{tmp_path}/job.json", "--model-data", model_tar,
                  "--state-root", state, "--setting", "json_sort_keys=false"])
    assert args.func(args) == 0
    printed = capsys.readouterr()
    assert json.loads(printed.out)["TransformJobStatus"] == "Completed"
    assert "transform: 1/1 input objects done" in printed.err  # progress on stderr, the JSON alone on stdout
    assert (tmp_path / "out" / "a.csv.out").read_text() == "id1,1,2,3\n"
    assert velibcast_main(["transform-job", "describe", "cli-job", "--state-root", state]) == 0
    described = json.loads(capsys.readouterr().out)
    assert described["TransformJobName"] == "cli-job" and "T" in described["TransformEndTime"]
    # A rerun of the same name is the service's ResourceInUse, reported as an error.
    assert velibcast_main(["transform-job", "run", "--cli-input-json", str(tmp_path / "job.json"), "--model-data",
                     model_tar, "--state-root", state]) == 2
    assert "already exists" in capsys.readouterr().err


def test_failed_job_exits_nonzero(tmp_path, model_tar, make_spec, capsys):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.csv").write_text("boom\n")
    (tmp_path / "job.json").write_text(json.dumps(make_spec("cli-fail", str(tmp_path / "in"), str(tmp_path / "out"))))
    assert velibcast_main(["transform-job", "run", "--cli-input-json", str(tmp_path / "job.json"), "--model-data",
                     model_tar, "--state-root", str(tmp_path / "s")]) == 1
    assert json.loads(capsys.readouterr().out)["TransformJobStatus"] == "Failed"


def test_settings_parse():
    s = cli.parse_settings(["slice_end_inclusive=false", "csv_quoting=verbatim"])
    assert s.slice_end_inclusive is False and s.csv_quoting == "verbatim"
    with pytest.raises(ConfigError, match="unknown data plane setting"):
        cli.parse_settings(["nope=1"])


def test_serve_subcommand(monkeypatch):
    from velibcast.batch_transform import server
    seen = {}
    monkeypatch.setattr(server, "serve", lambda d, p, h: seen.update(d=d, p=p, h=h))
    args = parse(["serve", "--model-dir", "/opt/ml/model", "--port", "8081"])
    assert args.func(args) == 0 and seen == {"d": "/opt/ml/model", "p": 8081, "h": "127.0.0.1"}  # loopback unless --host


def test_byoc_entry_point_accepts_docker_run_serve(monkeypatch):
    from velibcast.batch_transform import server
    seen = {}
    monkeypatch.setattr(server, "serve", lambda d, p, h: seen.update(d=d, p=p, h=h))
    monkeypatch.delenv("SM_MODEL_DIR", raising=False)
    server.main(["serve"])   # ENTRYPOINT ["serve"] + SageMaker's `serve` argument
    assert seen == {"d": "/opt/ml/model", "p": None, "h": "0.0.0.0"}


def test_dockerfile_is_consistent_with_the_code():
    import tomllib
    from pathlib import Path
    root = Path(__file__).resolve().parents[2]
    text = (root / "batch_transform" / "Dockerfile").read_text()
    scripts = tomllib.loads((root / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["serve"] == "velibcast.batch_transform.server:main"
    assert 'ENTRYPOINT ["serve"]' in text and "USER model" in text and "EXPOSE 8080" in text
    # `pip install .` needs velibcast/ and every stage folder its symlinks point to (configs/ included)
    for folder in ["velibcast", *(p.name for p in (root / "velibcast").iterdir() if p.is_symlink())]:
        assert f"COPY {folder}/ {folder}/" in text, folder


def velibcast_process(*args, **kw):
    return subprocess.Popen([sys.executable, "-m", "velibcast.flows.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def test_stop_from_another_process_ends_the_job_stopped_without_outputs(tmp_path, model_tar, make_spec):
    """StopTransformJob's contract (Stopping, then Stopped, no outputs left) for a local job that
    another process runs: `transform-job stop` leaves a stop request the running job reads before
    each input object."""
    hold = tmp_path / "hold"
    hold.mkdir()
    put(Storage(), str(tmp_path / "in"), {"a.csv": f"hold{hold}\n", "b.csv": "1\n", "c.csv": "2\n"})
    # One object at a time: b.csv and c.csv start only after a.csv's held request ends.
    spec = make_spec("stop-elsewhere", str(tmp_path / "in"), str(tmp_path / "out"), MaxConcurrentTransforms=1)
    (tmp_path / "job.json").write_text(json.dumps(spec))
    state = str(tmp_path / "state")
    runner = velibcast_process("transform-job", "run", "--cli-input-json", str(tmp_path / "job.json"),
                               "--model-data", model_tar, "--state-root", state)
    try:
        wait_until(lambda: (hold / "started").exists() or runner.poll() is not None, "a.csv's request is in flight",
                   timeout_s=120)
        assert runner.poll() is None, runner.communicate()
        stopper = velibcast_process("transform-job", "stop", "stop-elsewhere", "--state-root", state)
        out, err = stopper.communicate(timeout=120)
        assert stopper.returncode == 0 and out.startswith("stop-elsewhere: Stopping"), out + err
        assert LocalRuntime(Storage(), state).describe_transform_job("stop-elsewhere")["TransformJobStatus"] == "Stopping"
        (hold / "release").touch()
        out, err = runner.communicate(timeout=120)
    finally:
        (hold / "release").touch()
        if runner.poll() is None:
            runner.kill()
    assert runner.returncode == 1 and json.loads(out)["TransformJobStatus"] == "Stopped", out + err
    assert outputs(Storage(), str(tmp_path / "out")) == {}, "a.csv's output is removed, b and c never ran"
    assert LocalRuntime(Storage(), state).describe_transform_job("stop-elsewhere")["TransformJobStatus"] == "Stopped"
    again = velibcast_process("transform-job", "stop", "stop-elsewhere", "--state-root", state)
    out, err = again.communicate(timeout=120)
    assert again.returncode == 2 and "is Stopped" in err and "Traceback" not in err, err


def test_stop_an_unknown_job_names_where_it_looked(tmp_path, capsys):
    assert velibcast_main(["transform-job", "stop", "nope", "--state-root", str(tmp_path / "s")]) == 2
    assert "no transform job 'nope' under" in capsys.readouterr().err
