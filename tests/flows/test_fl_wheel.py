"""`pip install` of the wheel (not editable), outside the repository: configs and prices come with it.

The wheel is built from a copy of the tracked sources, installed into a fresh venv in a temporary
folder; the dependencies already installed here are made visible to it (a path entry, not a second
torch download), so the test runs offline. Then, from a folder with no checkout in sight:
`velibcast --version`, `velibcast --help`, and a one-hour run on a tiny store made of bundled real snapshots.
"""

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


def _tracked_sources(dest: Path) -> None:
    names = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    for name in names:
        if name.startswith(("tests/", "sample_data/", "bench/", "docs/")):
            continue  # not in the wheel; keeps the copy small
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        if (REPO / name).is_symlink():  # velibcast/<stage> -> ../<stage>, as git checks it out
            os.symlink(os.readlink(REPO / name), dest / name)
        else:
            shutil.copy2(REPO / name, dest / name)


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory):
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("needs a git checkout to list the sources")
    src = tmp_path_factory.mktemp("src")
    _tracked_sources(src)
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(dist),
                    str(src)], check=True, capture_output=True)
    (wheel,) = dist.glob("velibcast-*.whl")
    env_dir = tmp_path_factory.mktemp("venv")
    venv.create(env_dir, with_pip=False)
    site = Path(sysconfig.get_path("purelib", vars={"base": str(env_dir), "platbase": str(env_dir)}))
    # The installed dependencies, as a plain path entry after the wheel's own site-packages. This venv's
    # editable finder of velibcast is a .pth *hook* and is not run for a path entry, so `import velibcast`
    # can only find the wheel.
    (site / "deps-from-test-venv.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    py = env_dir / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--no-deps", "--no-index",
                    str(wheel)], check=True, capture_output=True)
    return env_dir


def _run(env_dir, args, cwd, **env):
    e = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    e.update(env)
    return subprocess.run([str(env_dir / "bin" / "velibcast"), *args], cwd=cwd, capture_output=True, text=True,
                          env=e, timeout=600)


def test_the_wheel_imports_velibcast_from_itself_and_ships_the_configs(wheel_venv, tmp_path):
    code = ("import velibcast, velibcast.flows, velibcast.config as c; "
            "print(velibcast.__file__); print(c.CONFIG_DIR); print(c.load_config('configs/local.yaml').source)")
    r = subprocess.run([str(wheel_venv / "bin" / "python"), "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    module, config_dir, source = r.stdout.split()
    assert module.startswith(str(wheel_venv)) and config_dir.startswith(str(wheel_venv))
    assert source == str(Path(config_dir) / "local.yaml")
    for name in ("local.yaml", "aws.yaml", "pricing.yaml", "iam/runner-policy.json", "athena/forecasts.sql"):
        assert (Path(config_dir) / name).is_file(), name


_MODULES = ("import pkgutil, velibcast; "
            "print(*sorted(m.name for m in pkgutil.walk_packages(velibcast.__path__, 'velibcast.')))")


def test_the_wheel_and_the_editable_install_import_the_same_modules(wheel_venv, tmp_path):
    wheel = subprocess.run([str(wheel_venv / "bin" / "python"), "-c", _MODULES], cwd=tmp_path, capture_output=True, text=True)
    editable = subprocess.run([sys.executable, "-c", _MODULES], cwd=tmp_path, capture_output=True, text=True)
    assert wheel.returncode == 0 and editable.returncode == 0, wheel.stderr + editable.stderr
    assert wheel.stdout.split() == editable.stdout.split()
    assert {"velibcast.datasets.windows", "velibcast.flows.cli", "velibcast.transform_code.inference"} <= set(wheel.stdout.split())


def test_version_and_help(wheel_venv, tmp_path):
    from importlib.metadata import version

    r = _run(wheel_venv, ["--version"], tmp_path)
    assert r.returncode == 0 and r.stdout.strip() == f"velibcast {version('velibcast')}"
    r = _run(wheel_venv, ["--help"], tmp_path)
    assert r.returncode == 0 and "run" in r.stdout and "[start, end)" in r.stdout


def test_one_hour_run_from_the_wheel(wheel_venv, tmp_path, storage, trained_model, e2e):
    from prefect.settings import PREFECT_API_URL

    root = tmp_path / "store"
    e2e.copy_snapshots(storage, str(root))
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump({"store": {"root": str(root)}, "model": {"uri": trained_model["model_uri"]},
                                   "transform": {"max_concurrent_transforms": 1}}))
    r = _run(wheel_venv, ["run", "--config", str(cfg), "--start", "2022-05-26T06:00Z", "--end", "2022-05-26T07:00Z"],
             tmp_path, PREFECT_API_URL=PREFECT_API_URL.value())
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    manifest_uri = next(l.split(None, 1)[1] for l in r.stdout.splitlines() if l.startswith("manifest:"))
    m = json.loads(Path(manifest_uri).read_text())
    assert m["counts"]["origins"] == 1 and m["counts"]["forecast_rows"] == 3 * m["counts"]["windows_emitted"] > 3000
    ce = m["cost_estimate"]   # the job ran for some time and wrote objects: both parts of the bill are > 0
    assert ce["billed_seconds"] > 0 and ce["s3_puts"] > 0
    assert ce["total"] == pytest.approx(ce["hourly_price"] * ce["instance_count"] * ce["billed_seconds"] / 3600
                                        + ce["s3_requests"], abs=1e-5)
    # a local run's cost is what SageMaker would bill, and whose prices it used, unsourced: one console line
    cost_line = next(l for l in r.stdout.splitlines() if l.startswith("estimated cost on SageMaker of the same job"))
    assert cost_line.endswith("(us-east-1 prices, used for eu-west-3: unsourced)")
    assert r.stdout.count("unsourced") == 1
