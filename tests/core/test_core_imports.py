"""The core (velibcast/*.py) imports no stage: stages import the core, never the reverse."""

import ast
from pathlib import Path

STAGES = ("datasets", "flows", "batch_transform", "training", "transform_code")
CORE = Path(__file__).resolve().parents[2] / "velibcast"


def _imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names += [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names += [a.name for a in node.names]
    return names


def test_core_modules_import_no_stage():
    modules = sorted(CORE.glob("*.py"))
    assert len(modules) >= 10  # the core is there (a wrong path would pass vacuously)
    bad = [f"{p.name}: {n}" for p in modules for n in _imports(p)
           if any(n == f"velibcast.{s}" or n.startswith(f"velibcast.{s}.") for s in STAGES)]
    assert bad == []
