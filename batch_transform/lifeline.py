"""A temporary folder and child processes that end with the process that made them, however it ends.

A process killed with SIGKILL runs none of its cleanup (no finally, no atexit, no finalizer):
its model servers were adopted by PID 1 and kept their memory, port and extracted model. So
each child holds the read end of a pipe whose write end only the parent holds: when the parent
ends, however it ends, the kernel closes the write end and the child reads end of file.
PR_SET_PDEATHSIG, which the temporary Prefect server uses (flows/prefect_api.py, started on the
main thread), is not enough here: it fires when the *thread* that started the child ends, and
the runtime starts servers on one thread that jobs use from others (servers started ahead of a
job, the SageMaker API's job threads).

The folder (extracted models, server logs) is removed by close(), or, when the parent cannot,
by a small helper process that waits on the same pipe:

    python -m velibcast.batch_transform.lifeline FD FOLDER
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable


class Lifeline:
    """`folder` is this process's temporary folder; a child started with `fd` in its pass_fds
    and `on_parent_exit(fd, ...)` in its entry point learns when this process has ended."""

    def __init__(self, prefix: str):
        self.folder = tempfile.mkdtemp(prefix=prefix)
        # Both ends are non-inheritable (PEP 446): a child holds the read end only when given it,
        # and none holds the write end (children are started with exec, which closes it), so end
        # of file means this process closed it or ended.
        self.fd, self._write_fd = os.pipe()
        self._sweeper: subprocess.Popen | None = subprocess.Popen(
            [sys.executable, "-m", __name__, str(self.fd), self.folder], pass_fds=(self.fd,),
            stdin=subprocess.DEVNULL)

    def close(self) -> None:
        """Remove the folder; children still holding `fd` read end of file."""
        if self._sweeper is None:
            return
        shutil.rmtree(self.folder, ignore_errors=True)
        os.close(self._write_fd)
        self._sweeper.wait()  # it finds the folder gone and ends at once
        os.close(self.fd)
        self._sweeper = None


def on_parent_exit(fd: int, action: Callable[[], None]) -> None:
    """Run `action` on a daemon thread once the write end of `fd`'s pipe is closed."""

    def wait() -> None:
        os.read(fd, 1)  # nothing is ever written: this returns at end of file
        action()

    threading.Thread(target=wait, name="lifeline", daemon=True).start()


def sweep(argv: list[str]) -> None:
    """The helper process: remove FOLDER once the pipe FD reads end of file."""
    fd, folder = int(argv[0]), argv[1]
    # Ctrl-C reaches the whole process group: the parent cleans up then, and this must outlive it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.read(fd, 1)
    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sweep(sys.argv[1:])
