"""Every declared dependency is imported by the product or carries a comment saying why it is declared."""

import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PRODUCT_DIRS = ("velibcast", "datasets", "batch_transform", "flows", "training", "transform_code")
# distribution name -> import name, where they differ
IMPORT_NAMES = {"pyyaml": "yaml", "sagemaker-core": "sagemaker.core"}


def _imported(module: str) -> bool:
    pattern = re.compile(rf"^\s*(import|from)\s+{re.escape(module)}(\.|\s|$)", re.M)
    return any(pattern.search(p.read_text()) for d in PRODUCT_DIRS for p in (REPO / d).rglob("*.py"))


def test_each_dependency_is_imported_or_explained():
    text = (REPO / "pyproject.toml").read_text()
    deps = tomllib.loads(text)["project"]["dependencies"]
    lines = text.splitlines()
    unexplained = []
    for dep in deps:
        name = re.split(r"[<>=!~\[ ;]", dep, maxsplit=1)[0].lower()
        if _imported(IMPORT_NAMES.get(name, name.replace("-", "_"))):
            continue
        i = next(k for k, line in enumerate(lines) if line.strip().startswith(f'"{dep}"'))
        comment = lines[i - 1].strip().startswith("#") or "#" in lines[i].split(f'"{dep}"', 1)[1]
        if not comment:
            unexplained.append(dep)
    assert unexplained == [], f"declared but never imported, with no comment saying why: {unexplained}"
