"""Where every bench saves its figures (bench/results/<bench>-<UTC time>.json, stamped with that time),
and how a bench runs each case in a process of its own, set as the velibcast CLI's process is.

Imported by the bench scripts as a sibling module (a script's own folder is the first entry of
sys.path); it is not test code and imports nothing of the tests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path

from velibcast import process_settings
from velibcast.timeutil import UTC, iso_second, key_time

RESULTS = Path(__file__).resolve().parent / "results"


def save(bench: str, results: dict, when: datetime | None = None) -> Path:
    """Write `results` with a "when" (UTC) as JSON; prints and returns the file's path."""
    when = when or datetime.now(UTC)
    out = RESULTS / f"{bench}-{key_time(when)}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"when": iso_second(when), **results}, indent=2))
    print(f"saved {out}")
    return out


def peak_mb() -> float:
    """This process's own peak resident memory (VmHWM). Not ru_maxrss: exec carries the parent's peak
    into the child, so a case would report at least its parent's size."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def child(cases: Mapping[str, Callable[[dict], dict]], case: str, spec: dict) -> None:
    """Run one case in this (child) process and print its result, with its peak memory, as JSON.
    Each case's process, the floor's too, is set as `velibcast`'s is (flows/cli.py), so the figures
    are the command's and a ratio compares like with like."""
    process_settings.for_batch_runs()
    out = cases[case](spec)
    out["peak_rss_mb"] = peak_mb()
    print(json.dumps(out))


def once(script: str, case: str, spec: dict, env: dict | None = None) -> dict:
    """`script --child case spec` in a fresh process: its result (the last line it prints)."""
    p = subprocess.run([sys.executable, script, "--child", case, json.dumps(spec)], capture_output=True, text=True,
                       cwd=Path(script).resolve().parents[1], env={**os.environ, **(env or {})})
    if p.returncode:
        raise SystemExit(f"{Path(script).name} case {case} {spec} failed:\n{p.stderr}")
    return json.loads(p.stdout.strip().splitlines()[-1])
