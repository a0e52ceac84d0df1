"""The repository is the whole world: no tracked file reads or cites a path outside it."""

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("git") is None or not (REPO / ".git").exists(), reason="needs a git checkout")
def test_no_tracked_file_points_outside_the_repository():
    r = subprocess.run([str(REPO / ".ci" / "self_contained.sh")], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_every_bts_reference_has_its_section_in_the_rules_document():
    import re

    doc = (REPO / "docs" / "batch-transform-rules.md").read_text()
    sections = set(re.findall(r"^#{2,3} (\d+(?:\.\d+)?)\.? ", doc, flags=re.M))
    cited = set()
    for path in REPO.rglob("*"):
        if path.suffix not in {".py", ".md", ".yaml"} or ".venv" in path.parts or not path.is_file():
            continue
        for ref in re.findall(r"BTS ((?:§[\d.]+[-, ]*(?:and )?)+)", path.read_text(errors="ignore")):
            cited.update(s.rstrip(".") for s in re.findall(r"§([\d.]+)", ref))
    assert cited and cited <= sections, f"cited but missing in docs/batch-transform-rules.md: {cited - sections}"
