"""Process-wide settings, for entry points only.

Each changes the whole process (its allocator, its garbage collector), so library code never
calls them: a program that imports velibcast keeps its own settings. The entry points, each
saying why beside the call:

- the `velibcast` CLI (flows/cli.py `main`): `for_batch_runs`, before anything else;
- the process a Prefect worker starts for one flow run of a deployment (`prefect.yaml`): the
  deployed flows (flows/nightly.py `nightly` and `forecast`, flows/backfill.py `backfill`) call
  `for_flow_run_process` first. Such a process is Prefect's engine, started with the run's id in
  PREFECT__FLOW_RUN_ID to run that one flow and exit, so it is the flow's own, as the CLI's
  process is the command's: it gets the CLI's settings. A program that calls a flow function
  itself (the CLI, a test, a notebook) has no such variable and keeps its settings;
- the model server (batch_transform/server.py `main`, the container's `serve` and the local
  runtime's server processes): `for_model_server`, before the model loads; its `serve` freezes
  the collector after the load;
- the benches that measure the CLI's paths (bench/windows.py).
"""

from __future__ import annotations

import ctypes
import gc
import os

_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter
_MMAP_THRESHOLD_BYTES = 128 * 1024  # glibc's initial value, kept fixed
# Allocations between two collections of the youngest generation (Python's default: 700). A
# snapshot parsed by the record path makes one dict per line and keeps none of them: at the
# default, the collector scans them, and everything the run holds, again and again.
GC_GEN0_THRESHOLD = 100_000
# Set by a Prefect worker (BaseWorker._base_flow_run_environment) in the process it starts for a flow run.
FLOW_RUN_ENV = "PREFECT__FLOW_RUN_ID"


def fixed_mmap_threshold() -> None:
    """Freed large arrays go back to the system.

    glibc raises its mmap threshold after each large free (up to 32 MB); from then on every large
    temporary (a parsed column, a grid, a request's arrays) comes from the heap, and freed heap
    stays with the process. Fixing the threshold keeps the peak memory down, for some page
    faults. Elsewhere than glibc this does nothing.
    """
    try:
        ctypes.CDLL("libc.so.6").mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_BYTES)
    except (OSError, AttributeError):
        pass


def for_batch_runs() -> None:
    """What a process that assembles windows wants: freed arrays returned, fewer young collections."""
    gc.set_threshold(GC_GEN0_THRESHOLD)
    fixed_mmap_threshold()


def for_flow_run_process() -> None:
    """for_batch_runs in a process a Prefect worker started for one flow run; nothing elsewhere."""
    if os.environ.get(FLOW_RUN_ENV):
        for_batch_runs()


def for_model_server() -> None:
    """The model server's: the allocator setting the CLI takes. Each mini-batch parses its body
    into arrays and frees them; returned to the system, a server's memory stays near one
    request's instead of its largest one's. The collector is the server's own business (it
    freezes the model's objects after loading them)."""
    fixed_mmap_threshold()
