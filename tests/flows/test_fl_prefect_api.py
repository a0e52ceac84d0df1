"""The temporary Prefect API server a command starts before importing Prefect (flows/prefect_api.py)."""

import os
import signal
import subprocess
import sys
import time

from velibcast.flows import prefect_api

SCRIPT = """
from velibcast.flows import prefect_api

server = prefect_api.start()
from prefect import flow  # imported while the server boots, as the CLI does
from prefect.context import FlowRunContext
from prefect.settings import get_current_settings


@flow
def which_api():
    return FlowRunContext.get().client.api_url, get_current_settings().flows.heartbeat_frequency


with prefect_api.serving(server):
    api, heartbeat = which_api()
print("API", str(api).rstrip("/"), server.url, heartbeat, server.proc.pid)
"""


def _running(pid: int | str) -> bool:
    """Alive and not a zombie (an orphan's exit is reaped by whatever adopted it, maybe never)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _child_env(**extra) -> dict:
    env = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120", **extra}
    env.pop("PREFECT_API_URL", None)
    return env


def test_a_run_without_an_api_runs_against_the_server_started_first(tmp_path):
    """Why: Prefect started its own temporary server only once the flow needed a client, 4 s
    after the command began; the flow must still run under a real Prefect API, and no server
    may outlive the command."""
    script = tmp_path / "flow.py"
    script.write_text(SCRIPT)
    out = subprocess.run([sys.executable, str(script)], env=_child_env(), capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    line = next(x for x in out.stdout.splitlines() if x.startswith("API "))
    _, api, url, heartbeat, pid = line.split()
    assert api == url  # the flow ran against the server started before Prefect was imported
    assert heartbeat == "None"  # nobody reads heartbeats from a server that dies with the process
    assert "Starting temporary server" not in out.stderr  # Prefect did not start a second one
    assert not _running(pid)  # stopped at exit


def test_a_server_that_cannot_start_fails_the_command_with_its_exit_code(tmp_path):
    script = tmp_path / "flow.py"
    script.write_text(SCRIPT)
    # The server's database cannot be created: its start-up fails before it answers.
    bad_db = f"sqlite+aiosqlite:///{tmp_path}/missing/dir/prefect.db"
    out = subprocess.run([sys.executable, str(script)], env=_child_env(PREFECT_API_DATABASE_CONNECTION_URL=bad_db),
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 1
    assert "the temporary Prefect API server exited with code" in out.stderr
    assert "API " not in out.stdout  # no flow ran


def test_a_configured_api_is_used_and_the_server_started_first_is_stopped():
    """Under the session's Prefect test harness, as under a profile's PREFECT_API_URL."""
    from prefect.settings import get_current_settings

    configured = get_current_settings().api.url
    assert configured
    server = prefect_api.start()
    assert server is not None and server.proc is not None
    pid = server.proc.pid
    with prefect_api.serving(server):
        assert get_current_settings().api.url == configured
    assert server.proc is None and not _running(pid)
    assert os.environ.get("PREFECT_API_URL") != server.url


def test_the_server_does_not_outlive_a_killed_command(tmp_path):
    """atexit does not run for a killed process: the server must still stop (Linux: PR_SET_PDEATHSIG)."""
    script = tmp_path / "killed.py"
    script.write_text("import sys, time\nfrom velibcast.flows import prefect_api\n"
                      "server = prefect_api.start()\nprint(server.proc.pid, flush=True)\ntime.sleep(600)\n")
    proc = subprocess.Popen([sys.executable, str(script)], env=_child_env(), stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    pid = int(proc.stdout.readline())
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 60
    while _running(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _running(pid)
