"""Is the process that wrote an owner record still running? The one rule for publish locks and local jobs.

An owner record names a process four ways, because a pid alone names nothing for long:

- `host`: only this host's processes can be looked at. Another host's owner is not known to be
  dead (`dead_because` says None and `checkable` False); each caller then has its own fallback
  (a publish lock its lease, a local job the caller's wait deadline).
- `boot_id` (Linux `/proc/sys/kernel/random/boot_id`): pids and start times count again from
  zero after a restart, so an owner recorded under another boot is dead whatever runs under
  its pid now. Without it, a lock or job left by a machine that rebooted could match a new
  process by chance and be waited on until its lease or deadline.
- `pid`: no such process, or one that has exited and not been reaped yet (a zombie), is dead.
- `start_ticks` (field 22 of `/proc/<pid>/stat`, clock ticks since boot): a pid running with
  another start time was reused by another process, and the owner is dead.

Where `/proc` is missing (macOS), only the pid is checked (`os.kill(pid, 0)`): a reused pid
then reads as alive, the safe side, since the fallbacks above still end the wait.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

_PROC = Path("/proc")


def boot_id() -> str | None:
    """This boot's id, or None where the system does not say."""
    try:
        return (_PROC / "sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (field 3 onwards), or None."""
    try:
        stat = (_PROC / str(pid) / "stat").read_text(errors="replace")
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: fields resume after the last ')'
    return stat.rsplit(")", 1)[1].split()


@dataclass(frozen=True)
class Owner:
    host: str
    pid: int
    boot_id: str | None = None
    start_ticks: str | None = None

    @classmethod
    def of(cls, pid: int) -> Owner:
        """The identity of process `pid` of this host, as it is now."""
        fields = _stat(pid)
        return cls(socket.gethostname(), pid, boot_id(), fields[19] if fields else None)

    @classmethod
    def current(cls) -> Owner:
        return cls.of(os.getpid())

    def to_json(self) -> dict:
        return {"host": self.host, "pid": self.pid, "boot_id": self.boot_id, "start_ticks": self.start_ticks}

    @classmethod
    def from_json(cls, d: dict) -> Owner:
        """From `to_json`'s fields; also reads the records of earlier versions: a local job's
        `start` (ticks) and a publish lock's `process_start` (`<boot id>:<ticks>`)."""
        boot, ticks = d.get("boot_id"), d.get("start_ticks")
        if ticks is None and d.get("process_start"):
            boot, _, ticks = str(d["process_start"]).rpartition(":")
            boot = boot or None
        if ticks is None and d.get("start") is not None:
            ticks = str(d["start"])
        return cls(str(d.get("host", "")), int(d["pid"]), boot, ticks)

    @property
    def checkable(self) -> bool:
        """Whether this host can tell if the owner is alive."""
        return self.host == socket.gethostname()

    def dead_because(self) -> str | None:
        """Why the owner is known to be dead, or None when it is alive or cannot be checked from here."""
        if not self.checkable:
            return None
        here = boot_id()
        if self.boot_id and here and self.boot_id != here:
            return f"pid {self.pid} was recorded before this machine restarted (boot {self.boot_id})"
        if not _PROC.is_dir():
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                return f"pid {self.pid} is gone"
            except PermissionError:
                pass  # it exists, under another user
            return None
        fields = _stat(self.pid)
        if fields is None:
            return f"pid {self.pid} is gone"
        if fields[0] in ("Z", "X"):
            return f"pid {self.pid} has exited"
        if self.start_ticks is not None and fields[19] != self.start_ticks:
            return f"pid {self.pid} is now another process"
        return None
