"""A deployment's flow run gets the process settings the CLI gets (velibcast/process_settings.py):
the process a Prefect worker starts for one flow run is an entry point; a program that calls a
flow itself keeps its own settings."""

import ast
import gc
import os
import subprocess
import sys
import uuid

import yaml

from tests.helpers import REPO
from velibcast import process_settings

PROBE = ("import gc; from velibcast import process_settings as p; p.for_flow_run_process(); "
         "print(gc.get_threshold()[0])")


def _gen0_threshold_after_the_call(env_extra: dict) -> int:
    env = {k: v for k, v in os.environ.items() if k != process_settings.FLOW_RUN_ENV}
    r = subprocess.run([sys.executable, "-c", PROBE], env={**env, **env_extra}, capture_output=True, text=True,
                       check=True, cwd=REPO)
    return int(r.stdout)


def test_a_process_a_worker_started_for_a_flow_run_takes_the_batch_settings():
    assert _gen0_threshold_after_the_call({process_settings.FLOW_RUN_ENV: str(uuid.uuid4())}) == \
        process_settings.GC_GEN0_THRESHOLD


def test_a_program_calling_a_flow_itself_keeps_its_own_settings(monkeypatch):
    assert _gen0_threshold_after_the_call({}) != process_settings.GC_GEN0_THRESHOLD  # a fresh program's own
    # In this process too, whatever earlier tests left (the CLI's main, called in-process, is an entry point).
    monkeypatch.delenv(process_settings.FLOW_RUN_ENV, raising=False)
    before = gc.get_threshold()
    gc.set_threshold(701, *before[1:])  # a program's own setting
    try:
        process_settings.for_flow_run_process()  # this test process was not started by a worker
        assert gc.get_threshold()[0] == 701
    finally:
        gc.set_threshold(*before)


def test_every_deployed_flow_applies_them_first():
    deployments = yaml.safe_load((REPO / "prefect.yaml").read_text())["deployments"]
    entrypoints = sorted({d["entrypoint"] for d in deployments})
    assert len(entrypoints) >= 3
    missing = []
    for entry in entrypoints:
        module, func = entry.removeprefix("velibcast.").rsplit(".", 1)
        tree = ast.parse((REPO / (module.replace(".", "/") + ".py")).read_text())
        fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == func)
        body = [s for s in fn.body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))]
        if "process_settings.for_flow_run_process()" not in ast.unparse(body[0]):
            missing.append(entry)
    assert missing == []
