"""Process-wide settings, for entry points only: the `velibcast` CLI and the benches that measure it.

Each changes the whole process (its allocator, its garbage collector), so library code never
calls them: a program that imports velibcast keeps its own settings. An entry point that applies
them says why beside the call.
"""

from __future__ import annotations

import ctypes
import gc

_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter
_MMAP_THRESHOLD_BYTES = 128 * 1024  # glibc's initial value, kept fixed
# Allocations between two collections of the youngest generation (Python's default: 700). A
# snapshot parsed by the record path makes one dict per line and keeps none of them: at the
# default, the collector scans them, and everything the run holds, again and again.
GC_GEN0_THRESHOLD = 100_000


def for_batch_runs() -> None:
    """What a process that assembles windows wants: freed arrays returned, fewer young collections.

    glibc raises its mmap threshold after each large free (up to 32 MB); from then on every parsed
    column and grid temporary comes from the heap, and freed heap stays with the process. Fixing
    the threshold keeps the peak memory of a large store down, for some page faults. Elsewhere
    than glibc this part does nothing.
    """
    gc.set_threshold(GC_GEN0_THRESHOLD)
    try:
        ctypes.CDLL("libc.so.6").mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_BYTES)
    except (OSError, AttributeError):
        pass
