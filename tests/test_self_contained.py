"""The repository is the whole world: no tracked file reads or cites a path outside it."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("git") is None or not (REPO / ".git").exists(), reason="needs a git checkout")
def test_no_tracked_file_points_outside_the_repository():
    r = subprocess.run([str(REPO / ".ci" / "self_contained.sh")], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


# An issue number, or a bare #N, cites a tracker the repository does not hold; owner/repo#N and
# links to another project's issues ([#N](https://...)) name where to look, and "#555555" is a
# colour, so they are not matched.
OUR_ISSUE = re.compile(r"""\bissues?\s*#?\d+|(?<![\w/.\-"'])#\d+\b(?!\]\(https?://)|\bround\s+(two|three)\b""",
                       re.IGNORECASE)


@pytest.mark.skipif(shutil.which("git") is None or not (REPO / ".git").exists(), reason="needs a git checkout")
def test_no_comment_or_readme_cites_an_issue_number():
    """A reader has no tracker: a comment states the rule, or links the document that holds it."""
    files = subprocess.run(["git", "ls-files", "*.py", "*.md"], cwd=REPO, capture_output=True, text=True,
                           check=True).stdout.split()
    assert len(files) > 100
    found = [f"{name}:{n}: {line.strip()}" for name in files if (REPO / name).is_file()
             for n, line in enumerate((REPO / name).read_text(errors="ignore").splitlines(), 1)
             if OUR_ISSUE.search(line)]
    assert found == []


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
