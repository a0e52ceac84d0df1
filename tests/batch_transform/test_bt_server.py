"""The model server process: the SageMaker container contract (BTS §4) and the handler contract."""

import json
import os
import select
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest

from tests.helpers import free_port, wait_for_ping, wait_until
from velibcast import constants as C
from velibcast.batch_transform import handlers as H
from velibcast.batch_transform import server
from velibcast.transform_code import velib_features as F
from velibcast.transform_code.velib_errors import ModelLoadError

EXEC_PARAMS = {"MaxConcurrentTransforms": 2, "BatchStrategy": "MULTI_RECORD", "MaxPayloadInMB": 1}


def _start(model_dir, env, args=()):
    proc = subprocess.Popen([sys.executable, "-m", "velibcast.batch_transform.server", "--model-dir", model_dir,
                             "--host", "127.0.0.1", *args],
                            env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return proc


def _wait(url, proc):
    wait_for_ping(url, proc)


@pytest.fixture(scope="module")
def srv(model_dir):
    port = free_port()
    env = {"SAGEMAKER_BIND_TO_PORT": str(port), "SAGEMAKER_MAX_PAYLOAD_IN_MB": "1",
           C.EXECUTION_PARAMETERS_ENV: json.dumps(EXEC_PARAMS), C.SERVER_READ_TIMEOUT_ENV: "1.5"}
    proc = _start(model_dir, env)
    url = f"http://127.0.0.1:{port}"   # port from SAGEMAKER_BIND_TO_PORT
    _wait(url, proc)
    yield url, proc
    proc.terminate()
    proc.wait(timeout=30)


def post(url, body, ct="text/csv", accept="text/csv", timeout=10):
    return httpx.post(f"{url}/invocations", content=body, headers={"Content-Type": ct, "Accept": accept},
                      timeout=timeout)


def test_ping_is_200_with_an_empty_body(srv):
    r = httpx.get(f"{srv[0]}/ping")
    assert r.status_code == 200 and r.content == b""


def test_execution_parameters_from_the_environment(srv):
    r = httpx.get(f"{srv[0]}/execution-parameters")
    assert r.status_code == 200 and r.json() == EXEC_PARAMS


def test_invocations_multirecord_csv(srv):
    r = post(srv[0], b"1,2\n3,4\n")
    assert r.status_code == 200 and r.content == b"3\n7\n"
    assert r.headers["content-type"].startswith("text/csv")


def test_invocations_jsonlines_and_json(srv):
    r = post(srv[0], b'{"features":[1,2]}\n[3,4]\n', ct="application/jsonlines", accept="application/jsonlines")
    assert r.content == b'{"sum": 3}\n{"sum": 7}\n'
    r = post(srv[0], b'{"features":[1,2]}', ct="application/json", accept="application/json")
    assert r.json() == {"sum": 3}


def test_an_error_with_status_code_keeps_its_status(srv):
    r = post(srv[0], b"1\nboom\n")
    assert r.status_code == 400 and "boom: bad record" in r.text


def test_other_errors_are_500(srv):
    r = post(srv[0], b"crash\n")
    assert r.status_code == 500 and "crash: server fault" in r.text


def test_non_utf8_body_is_a_client_error(srv):
    r = post(srv[0], b"\xff\xfe,1\n")
    assert r.status_code == 400 and "not UTF-8" in r.text


def test_payload_over_the_limit_gets_413(srv):
    r = post(srv[0], b"1\n" * (C.MB // 2 + 1))
    assert r.status_code == 413


def test_chunked_payload_over_the_limit_gets_413(srv):
    def chunks():
        for _ in range(3):
            yield b"1\n" * (C.MB // 4)
    r = httpx.post(f"{srv[0]}/invocations", content=chunks(), headers={"Content-Type": "text/csv"}, timeout=10)
    assert r.status_code == 413


def test_ping_answers_while_a_prediction_is_running(srv, tmp_path):
    done = threading.Event()
    t = threading.Thread(target=lambda: (post(srv[0], f"hold{tmp_path}\n".encode()), done.set()))
    t.start()
    wait_until(lambda: (tmp_path / "started").exists(), "the prediction has started")
    r = httpx.get(f"{srv[0]}/ping", timeout=1.0)
    busy = not done.is_set()          # the prediction cannot end before the release below
    (tmp_path / "release").touch()
    t.join()
    assert r.status_code == 200 and busy


def test_graceful_shutdown_finishes_in_flight_request(model_dir, tmp_path):
    port = free_port()
    proc = _start(model_dir, {}, ["--port", str(port)])   # --port, no SAGEMAKER_BIND_TO_PORT
    url = f"http://127.0.0.1:{port}"
    _wait(url, proc)
    result = {}
    t = threading.Thread(target=lambda: result.setdefault("r", post(url, f"hold{tmp_path}\n".encode())))
    t.start()
    wait_until(lambda: (tmp_path / "started").exists(), "the request is in flight")
    proc.terminate()
    (tmp_path / "release").touch()    # the request ends only after SIGTERM was sent
    t.join()
    assert proc.wait(timeout=30) in (0, -15)   # uvicorn re-raises SIGTERM once drained
    assert result["r"].status_code == 200
    logs = [json.loads(line) for line in proc.stderr.read().decode().splitlines() if line.startswith("{")]
    assert any(e["event"] == "model loaded" for e in logs)   # structured logs


# ------------------------------------------------------------ bad input
def _raw(url, head: bytes, body: bytes = b"") -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    s = socket.create_connection((host, int(port)), timeout=30)
    s.sendall(head + body)
    return s


def _response(s: socket.socket) -> str:
    data = b""
    while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < int(
            data.lower().split(b"content-length: ", 1)[1].split(b"\r\n", 1)[0]):
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    return data.decode()


def _log_lines(proc, event, deadline_s=30.0):
    """The server's JSON log lines with this event, reading its stderr (unbuffered) until one comes."""
    fd, buf, end = proc.stderr.fileno(), b"", time.monotonic() + deadline_s
    while time.monotonic() < end:
        if select.select([fd], [], [], 0.5)[0]:
            buf += os.read(fd, 65536)
        found = [json.loads(ln) for ln in buf.split(b"\n") if ln.startswith(b"{") and ln.endswith(b"}")]
        found = [d for d in found if d["event"] == event]
        if found:
            return found
    return []


def test_a_body_that_trickles_in_is_cut_off_with_408(srv):
    """Headers promise 1000 bytes, 10 arrive: the server answers 408 at its read timeout (1.5 s here)."""
    s = _raw(srv[0], b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\nContent-Length: 1000\r\n\r\n",
             b"1,2,3,4,5,")
    with s:
        answer = _response(s)
    assert answer.startswith("HTTP/1.1 408") and "did not arrive within 1.5 s of its headers (10 bytes received)" in answer


def test_a_client_disconnect_is_a_json_log_line(srv):
    url, proc = srv
    s = _raw(url, b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\nContent-Length: 1000\r\n\r\n",
             b"1,2,3")
    s.close()
    lines = _log_lines(proc, "client disconnected")
    assert lines and lines[0]["while"] == "reading the request body" and lines[0]["bytes_in"] == 5
    assert lines[0]["level"] == "warning"
    assert httpx.get(f"{url}/ping").status_code == 200  # and the server goes on


@pytest.fixture(scope="module")
def velib_srv(tmp_path_factory):
    """A server of velibcast's own model (transform_code, fitted on a tiny synthetic archive), which
    validates every field."""
    from velibcast.training.package import extract
    from velibcast.training.synthetic import gbm_archive

    model_dir = extract(gbm_archive(20, seed=3), tmp_path_factory.mktemp("velib-model"))
    port = free_port()
    proc = _start(str(model_dir), {"SAGEMAKER_BIND_TO_PORT": str(port)})
    url = f"http://127.0.0.1:{port}"
    _wait(url, proc)
    yield url, proc
    proc.terminate()
    proc.wait(timeout=30)


@pytest.mark.parametrize("which", ["srv", "velib_srv"])
def test_deeply_nested_json_is_400_over_http(which, request):
    """A 500 is retried by the runtime and then fails the job; this body can never succeed."""
    url = request.getfixturevalue(which)[0]
    r = post(url, "[" * 100_000 + "]" * 100_000, ct="application/json", accept="application/json")
    assert r.status_code == 400 and "nested too deeply" in r.text


def test_velib_model_answers_every_output_column_in_range(velib_srv):
    # after lon: state_age_min, stale, clock_change_h, clock_change_horizon (feature contract 5)
    rows = [[0] * 24 + [7, 1, 0, 0, 20, 1, 48.85, 2.35, 12, 0, 0, 0],
            [20] * 24 + [23, 4, 0, 1, 20, 2, 48.86, 2.34, 200, 1, 0, 0],
            [5] * 24 + [12, 6, 1, 0, 0, 0, 48.87, 2.36, 0, 0, 0, 0]]
    assert all(len(r) == len(F.FEATURE_COLUMNS) for r in rows)
    body = "".join(",".join(map(str, r)) + "\n" for r in rows)
    r = post(velib_srv[0], body, ct="text/csv", accept="text/csv")
    assert r.status_code == 200
    lines = r.text.splitlines()
    assert len(lines) == 3
    for line, row in zip(lines, rows):
        values = [float(v) for v in line.split(",")]
        assert len(values) == len(F.OUTPUT_COLUMNS)
        q = np.array(values).reshape(F.MAX_HORIZON, len(F.OUTPUT_QUANTITIES))
        assert (q[:, :4] >= 0).all() and (q[:, :4] <= row[28]).all() and (q[:, :4] == np.round(q[:, :4])).all()
        assert (q[:, 1] <= q[:, 2]).all() and (q[:, 2] <= q[:, 3]).all() and ((q[:, 4:6] >= 0) & (q[:, 4:6] <= 1)).all()
        # the stale station (stale = 1) is served by its profile at every horizon, the others by the model
        assert (q[:, 6] == (F.FALLBACKS.index("profile") if row[F.COL[F.STALE]] else F.MODEL)).all()
    objs = post(velib_srv[0], body, ct="text/csv", accept="application/jsonlines").text.splitlines()
    assert [[json.loads(o)[c] for c in F.OUTPUT_COLUMNS] for o in objs] == [
        [float(v) for v in line.split(",")] for line in lines]


def test_implausible_numbers_are_400_naming_the_field(velib_srv):
    feats = {"history": [1] * 24, "hour": 8, "day_of_week": 3, "non_working_day": 0, "non_working_next_day": 0,
             "capacity": 2 ** 40, "station_index": 1, "lat": 1000, "lon": 2.35,
             "state_age_min": 0, "stale": 0, "clock_change_h": 0, "clock_change_horizon": 0}
    r = post(velib_srv[0], json.dumps(feats), ct="application/json", accept="application/json")
    assert r.status_code == 400
    assert f"record 1, field capacity: is {2 ** 40}; must be an integer in [0, 200]" in r.text
    assert "record 1, field lat: is 1000; must be in [48.6, 49.1] degrees" in r.text


def test_velibcast_serve_binds_loopback_unless_told(monkeypatch):
    """Only the container entry point listens on every interface, as the SageMaker contract requires."""
    from velibcast.flows import cli

    seen = []
    monkeypatch.setattr(server, "serve", lambda d, p, h: seen.append(h))
    cli.main(["serve", "--model-dir", "/m"])
    cli.main(["serve", "--model-dir", "/m", "--host", "0.0.0.0"])
    server.main(["serve", "--model-dir", "/m"])
    assert seen == ["127.0.0.1", "0.0.0.0", "0.0.0.0"]


def test_port_flag_overrides_the_environment(monkeypatch):
    seen = {}
    monkeypatch.setattr(server, "serve", lambda d, p, h: seen.update(dir=d, port=p, host=h))
    monkeypatch.setenv("SAGEMAKER_BIND_TO_PORT", "9999")
    server.main(["serve", "--model-dir", "/m", "--port", "8123"])
    assert seen == {"dir": "/m", "port": 8123, "host": "0.0.0.0"}


def test_execution_parameters_404_when_unset(model_dir, monkeypatch):
    import asyncio

    monkeypatch.delenv(C.EXECUTION_PARAMETERS_ENV, raising=False)
    app = server.build_app(H.load(model_dir), ThreadPoolExecutor(max_workers=1))

    async def get():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bt") as c:
            return await c.get("/execution-parameters")
    assert asyncio.run(get()).status_code == 404


# ------------------------------------------------------------ handler contract without HTTP
def _module(tmp_path, source, name):
    code = tmp_path / "code"
    code.mkdir()
    (code / f"{name}.py").write_text(source)
    return tmp_path


def test_transform_fn_style_and_context_argument(tmp_path, monkeypatch):
    src = ("def model_fn(model_dir, context):\n    return 2\n"
           "def transform_fn(model, data, content_type, accept):\n    return data.upper() * model, 'text/plain'\n")
    d = _module(tmp_path, src, "bt_handler_tf")
    monkeypatch.setenv("SAGEMAKER_PROGRAM", "bt_handler_tf.py")
    h = H.load(d)
    assert h.invoke(b"ab", "text/csv", "text/plain") == (b"ABAB", "text/plain")


def test_transform_fn_with_split_hooks_is_refused(tmp_path, monkeypatch):
    src = "def transform_fn(m, d, c, a):\n    return d\ndef input_fn(d, c):\n    return d\n"
    d = _module(tmp_path, src, "bt_handler_mixed")
    monkeypatch.setenv("SAGEMAKER_PROGRAM", "bt_handler_mixed.py")
    with pytest.raises(ModelLoadError, match="cannot be combined"):
        H.load(d)


def test_accept_defaults_like_the_toolkit(tmp_path, monkeypatch):
    src = ("def model_fn(d):\n    return None\ndef input_fn(b, ct):\n    return (type(b).__name__, ct)\n"
           "def predict_fn(x, m):\n    return x\ndef output_fn(p, accept):\n    return f'{p[0]} {p[1]} {accept}'\n")
    d = _module(tmp_path, src, "bt_handler_acc")
    monkeypatch.setenv("SAGEMAKER_PROGRAM", "bt_handler_acc.py")
    h = H.load(d)
    assert h.invoke(b"x", "text/csv", "*/*")[0] == b"str text/csv application/json"
    assert h.invoke(b"x", "application/jsonlines", None)[0] == b"bytes application/jsonlines application/json"


def test_status_of():
    class E(Exception):
        status_code = 422
    class NotAnError(Exception):
        status_code = 200
    assert H.status_of(E()) == 422 and H.status_of(RuntimeError()) == 500
    assert H.status_of(NotAnError()) == 500, "only an HTTP error status is passed on"
    assert H.status_of(H.BadRequest("x")) == 400 and H.status_of(H.InferenceError("x")) == 500


def test_pre_model_and_warmup_hooks_run_once_around_model_fn(tmp_path, monkeypatch):
    src = ("calls = []\n"
           "def pre_model_fn(model_dir):\n    calls.append('pre')\n"
           "def model_fn(model_dir):\n    calls.append('model')\n    return 'm'\n"
           "def model_warmup_fn(model_dir, model):\n    calls.append('warmup:' + model)\n"
           "def transform_fn(model, data, ct, accept):\n    return ','.join(calls)\n")
    d = _module(tmp_path, src, "bt_handler_hooks")
    monkeypatch.setenv("SAGEMAKER_PROGRAM", "bt_handler_hooks.py")
    h = H.load(d)
    assert h.invoke(b"", "text/csv", "text/csv")[0] == b"pre,model", "load leaves the warm-up to the server"
    h.warm_up()
    assert h.invoke(b"", "text/csv", "text/csv")[0] == b"pre,model,warmup:m"


_WARMUP_GATED = ("import json, os, pathlib, sys, threading, time\n"
                 "warm = {}\n"
                 "def model_fn(model_dir):\n    return 'm'\n"
                 "def model_warmup_fn(model_dir, model):\n"
                 "    gate = pathlib.Path(os.environ['BT_WARMUP_GATE'])\n"
                 "    while not gate.exists():\n        time.sleep(0.02)\n"
                 "    warm['thread'] = threading.get_ident()\n"
                 "def transform_fn(model, data, ct, accept):\n"
                 "    return json.dumps({'warmed_thread': warm.get('thread') == threading.get_ident(),\n"
                 "                       'anyio_backend': 'anyio._backends._asyncio' in sys.modules})\n")


def test_ping_is_not_healthy_until_the_warmup_ran_and_requests_run_on_the_warmed_thread(tmp_path):
    """The service sends work once /ping is 200: the model's warm-up must be over by then, the
    first request must run on the thread it warmed, and what the request path loads on first
    use (anyio's backend, for Request.is_disconnected) is loaded already."""
    d = _module(tmp_path, _WARMUP_GATED, "bt_handler_warm")
    gate = tmp_path / "gate"
    port = free_port()
    proc = _start(str(d), {"SAGEMAKER_PROGRAM": "bt_handler_warm.py", "BT_WARMUP_GATE": str(gate)},
                  ["--port", str(port)])
    url = f"http://127.0.0.1:{port}"
    try:
        assert _log_lines(proc, "model loaded"), "model_fn ran"
        with pytest.raises(httpx.TransportError):  # the warm-up waits for the gate: nothing listens yet
            httpx.get(f"{url}/ping", timeout=1)
        gate.touch()
        _wait(url, proc)
        assert post(url, b"1\n").json() == {"warmed_thread": True, "anyio_backend": True}
    finally:
        proc.terminate()
        proc.wait(timeout=30)


_WARMUP_PER_THREAD = ("import json, threading\n"
                      "warmed = set()\n"
                      "both_in = threading.Barrier(2)\n"
                      "def model_fn(model_dir):\n    return 'm'\n"
                      "def model_warmup_fn(model_dir, model):\n    warmed.add(threading.get_ident())\n"
                      "def transform_fn(model, data, ct, accept):\n"
                      "    both_in.wait(timeout=30)\n"
                      "    return json.dumps({'thread': threading.get_ident(),\n"
                      "                       'warmed': threading.get_ident() in warmed, 'n_warmed': len(warmed)})\n")


def test_each_of_max_concurrent_transforms_threads_is_warmed_before_ping(tmp_path):
    """With SAGEMAKER_MAX_CONCURRENT_TRANSFORMS=2 two requests run at once, on two threads: both
    were warmed (a thread's first request would fault in the model's buffers again)."""
    d = _module(tmp_path, _WARMUP_PER_THREAD, "bt_handler_warm2")
    port = free_port()
    proc = _start(str(d), {"SAGEMAKER_PROGRAM": "bt_handler_warm2.py", C.MAX_CONCURRENT_TRANSFORMS_ENV: "2"},
                  ["--port", str(port)])
    url = f"http://127.0.0.1:{port}"
    try:
        _wait(url, proc)
        answers: list = []
        ts = [threading.Thread(target=lambda: answers.append(post(url, b"1\n", timeout=60).json())) for _ in range(2)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        assert len({a["thread"] for a in answers}) == 2, "the two requests ran at once, on two threads"
        assert all(a["warmed"] and a["n_warmed"] == 2 for a in answers), answers
    finally:
        proc.terminate()
        proc.wait(timeout=30)
