"""The local runtime's temporary folder (extracted models, server logs) goes with the runtime:
on close(), and when its process is killed with no server running to notice."""

import os
import signal
import subprocess
import sys

from tests.helpers import wait_until
from velibcast.batch_transform.local import LocalRuntime
from velibcast.storage import Storage

KILLED = """
import sys, time
from velibcast.batch_transform.local import LocalRuntime
from velibcast.storage import Storage

rt = LocalRuntime(Storage(), sys.argv[2])
rt.create_model("m", sys.argv[1])
print(rt._models["m"].model_dir, flush=True)
time.sleep(600)
"""


def test_close_removes_the_extracted_model_and_ends_the_helper(tmp_path, model_tar):
    rt = LocalRuntime(Storage(), str(tmp_path / "state"))
    rt.create_model("m", model_tar)
    model_dir = rt._models["m"].model_dir
    helper = rt._home()._sweeper
    assert os.path.isdir(model_dir) and helper is not None and helper.poll() is None
    rt.close()
    assert not os.path.exists(os.path.dirname(model_dir)) and helper.poll() == 0


def test_a_killed_runtime_s_extracted_model_is_removed_without_any_server(tmp_path, model_tar):
    """Killed between extracting the model and starting a server (or after its job, while publishing)."""
    script = tmp_path / "killed.py"
    script.write_text(KILLED)
    proc = subprocess.Popen([sys.executable, str(script), model_tar, str(tmp_path / "state")],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    model_dir = proc.stdout.readline().strip()
    assert os.path.isdir(model_dir)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    wait_until(lambda: not os.path.exists(os.path.dirname(model_dir)), "the killed runtime's folder is removed")
