"""One rule for whether a lock's or a job's owner is alive: host, boot, pid and start time."""

import os
import socket
import subprocess
import sys
from dataclasses import replace

from velibcast.liveness import Owner, boot_id


def test_this_process_is_alive():
    me = Owner.current()
    assert me.pid == os.getpid() and me.start_ticks is not None and me.boot_id == boot_id() is not None
    assert me.checkable and me.dead_because() is None
    assert Owner.from_json(me.to_json()) == me


def test_a_pid_that_is_gone_is_dead():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    owner = Owner.of(child.pid)
    child.wait()
    assert owner.dead_because() == f"pid {child.pid} is gone"


def test_a_process_that_exited_and_was_not_reaped_is_dead():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    owner = Owner.of(child.pid)
    os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # ended, still in the process table
    assert owner.dead_because() == f"pid {child.pid} has exited"
    child.wait()


def test_a_reused_pid_with_another_start_time_is_dead():
    assert Owner.current().start_ticks != "1"
    assert replace(Owner.current(), start_ticks="1").dead_because() == f"pid {os.getpid()} is now another process"


def test_an_owner_recorded_under_another_boot_is_dead_even_with_this_pid_and_start():
    owner = replace(Owner.current(), boot_id="another-boot")
    assert "before this machine restarted" in owner.dead_because()


def test_an_owner_on_another_host_cannot_be_judged_from_here():
    owner = replace(Owner.current(), host=socket.gethostname() + "-elsewhere", pid=2 ** 22 + 1)
    assert not owner.checkable and owner.dead_because() is None


def test_records_of_earlier_versions_read_to_the_same_owner():
    me = Owner.current()
    lock = {"host": me.host, "pid": me.pid, "process_start": f"{me.boot_id}:{me.start_ticks}"}
    job = {"host": me.host, "pid": me.pid, "start": me.start_ticks}
    assert Owner.from_json(lock) == me
    assert Owner.from_json(job) == replace(me, boot_id=None)
    assert Owner.from_json({**lock, "process_start": "another-boot:1"}).dead_because() is not None
