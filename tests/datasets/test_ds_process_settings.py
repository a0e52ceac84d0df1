"""Library code leaves the process as it found it: the allocator and the garbage collector are the
entry points' choice (velibcast/process_settings.py, called by the CLI and the benches), never a
side effect of calling the window path."""

import ast
import ctypes
import gc
from datetime import date

import pytest

from tests.helpers import REPO
from velibcast.datasets.assemble import assemble_transform_inputs
from velibcast.datasets.windows import origins_for_run_date
from velibcast.flows import cli

# What changes the whole process: the garbage collector's state and glibc's allocator settings.
PROCESS_WIDE_GC = {"disable", "enable", "set_threshold", "freeze", "unfreeze"}
# Entry points, each saying beside the call why its process wants the setting.
ENTRY_POINTS = {
    "velibcast/process_settings.py",  # the settings themselves, called only by entry points
    "batch_transform/server.py",      # the model server's main: gc.freeze after loading the model
    "flows/prefect_api.py",           # the Prefect server process's main: prctl, so it dies with the command
}
LIBRARY = ("velibcast", "datasets", "batch_transform", "transform_code", "training", "flows")


@pytest.fixture
def process_calls(monkeypatch):
    """Every call that would change the garbage collector or load libc, recorded."""
    calls = []
    for name in PROCESS_WIDE_GC:
        monkeypatch.setattr(gc, name, lambda *a, _n=name, **k: calls.append(f"gc.{_n}"))
    real_cdll = ctypes.CDLL

    def cdll(name, *a, **k):
        calls.append(f"ctypes.CDLL({name!r})")
        return real_cdll(name, *a, **k)

    monkeypatch.setattr(ctypes, "CDLL", cdll)
    return calls


def test_the_window_path_leaves_the_collector_and_the_allocator_alone(real_store, storage, tmp_path, process_calls):
    enabled = gc.isenabled()
    seen = []

    class Observer:
        def observe(self, cols, codes):
            seen.append(gc.isenabled())

    r = assemble_transform_inputs(storage, real_store, origins_for_run_date(date(2022, 5, 25)), str(tmp_path / "in"),
                                  observers=[Observer()])
    assert r.summary["windows_emitted"] > 0 and seen and set(seen) == {enabled}
    assert gc.isenabled() == enabled
    assert process_calls == []


def test_no_library_module_changes_the_allocator_or_the_collector():
    """The source says so for every path, large snapshots included (the sample's are small)."""
    paths = {p.resolve() for folder in LIBRARY for p in (REPO / folder).rglob("*.py")}  # velibcast/<stage> links
    assert len(paths) > 50
    found = []
    for path in sorted(paths):
        rel = path.relative_to(REPO).as_posix()
        if rel in ENTRY_POINTS:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and (
                    (node.value.id == "gc" and node.attr in PROCESS_WIDE_GC) or node.attr == "mallopt"):
                found.append(f"{rel}:{node.lineno}: {node.value.id}.{node.attr}")
            elif isinstance(node, ast.Import | ast.ImportFrom) and "ctypes" in (
                    [a.name for a in node.names] + [getattr(node, "module", None) or ""]):
                found.append(f"{rel}:{node.lineno}: imports ctypes")
    assert found == []


def test_the_cli_entry_point_applies_the_settings_first(monkeypatch):
    applied = []
    monkeypatch.setattr(cli.process_settings, "for_batch_runs", lambda: applied.append(True))
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    assert applied == [True]
