"""The layout (velibcast/layout.py): each stage folder is `velibcast.<stage>` and nothing else."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from velibcast.layout import STAGES

REPO = Path(__file__).resolve().parents[2]
BARE_NAMED = [s for s in STAGES if s != "transform_code"]  # transform_code imports nothing outside itself


def _python(code: str, cwd: Path, pythonpath: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_every_stage_folder_is_linked_into_velibcast():
    for stage in STAGES:
        link = REPO / "velibcast" / stage
        assert link.is_symlink() and os.readlink(link) == f"../{stage}", stage


@pytest.mark.parametrize("stage", BARE_NAMED)
def test_a_bare_import_of_a_stage_from_the_repository_root_finds_the_package_installed_under_that_name(stage, tmp_path):
    other = tmp_path / stage
    other.mkdir()
    (other / "__init__.py").write_text("WHO = 'the other package'\n")
    (other / "sub.py").write_text("X = 1\n")
    r = _python(f"import {stage}, {stage}.sub; print({stage}.WHO, {stage}.__file__, {stage}.sub.X)", REPO, str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["the", "other", "package", str(other / "__init__.py"), "1"]


@pytest.mark.parametrize("stage", BARE_NAMED)
def test_a_bare_import_of_a_stage_from_the_repository_root_is_not_found_when_no_such_package_is_installed(stage):
    r = _python(f"import {stage}", REPO)
    assert r.returncode == 1
    assert f"ModuleNotFoundError: No module named '{stage}': the folder {REPO / stage} is imported as velibcast.{stage}" in r.stderr


def test_the_stages_import_under_velibcast_from_the_repository_root():
    r = _python("import velibcast.datasets.windows as w, velibcast.flows.cli; print(w.__name__)", REPO)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "velibcast.datasets.windows"


def test_a_checkout_without_symbolic_links_fails_at_import_velibcast_with_the_fix(tmp_path):
    # What git writes for a link when core.symlinks is false: a file holding the target.
    package = tmp_path / "velibcast"
    shutil.copytree(REPO / "velibcast", package, symlinks=True, ignore=lambda d, names: [n for n in names if n in STAGES])
    for stage in STAGES:
        (package / stage).write_text(f"../{stage}")
    r = _python("import velibcast", tmp_path)
    assert r.returncode == 1
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith(f"ImportError: {package / STAGES[0]} is a file, not a link to ../{STAGES[0]}")
    assert "git config core.symlinks true && git checkout -- velibcast" in last
