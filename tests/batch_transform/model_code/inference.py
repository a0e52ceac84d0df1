"""A tiny model following the SageMaker PyTorch handler contract, for runtime tests.

A record's output is the sum of its numeric fields. Control words in a record's first
field make the container misbehave on purpose: boom (400), crash (500), extra (two
output lines), pid (the server's pid), env (SAGEMAKER_* variables), sleep<s>, and hold<dir>:
creates <dir>/started, then waits (up to 60 s) until the test creates <dir>/release, so a test
knows a request is in flight and decides when it ends.
"""

import json
import os
import threading
import time

import numpy as np

try:
    from . import helper_scale
except ImportError:
    import helper_scale

_lock = threading.Lock()
_inflight = 0
_max_inflight = 0
_calls = 0


class BadRequest(Exception):
    status_code = 400


def model_fn(model_dir):
    with open(os.path.join(model_dir, "config.json")) as f:
        return json.load(f)


def input_fn(body, content_type):
    if isinstance(body, (bytes, bytearray)):
        body = body.decode("utf-8")
    if content_type == "text/csv":
        return "csv", [line.split(",") for line in body.splitlines() if line]
    if content_type == "application/jsonlines":
        return "jsonl", [json.loads(line) for line in body.splitlines() if line]
    if content_type == "application/json":
        return "json", json.loads(body)
    raise BadRequest(f"unsupported content type {content_type}")


def _value(row, model):
    first = str(row[0]) if row else ""
    if first == "boom":
        raise BadRequest("boom: bad record")
    if first == "crash":
        raise RuntimeError("crash: server fault")
    if first == "pid":
        return [os.getpid()]
    if first == "env":
        return [";".join(f"{k}={v}" for k, v in sorted(os.environ.items()) if k.startswith("SAGEMAKER_"))]
    if first == "extra":
        return [0, 0]
    if first.startswith("hold"):
        folder = first[4:]
        open(os.path.join(folder, "started"), "w").close()
        deadline = time.monotonic() + 60
        while not os.path.exists(os.path.join(folder, "release")) and time.monotonic() < deadline:
            time.sleep(0.01)
        return [0]
    if first.startswith("sleep"):
        time.sleep(float(first[5:]))
        return [0]
    total = float(np.sum(np.asarray([float(x) for x in row], dtype=float)))
    return [helper_scale.scale(total, model["scale"])]


def _rows_of(kind, data):
    if kind == "json":
        return [data["features"]] if isinstance(data, dict) else [data]
    return [r["features"] if isinstance(r, dict) else r for r in data]


def predict_fn(data, model):
    global _inflight, _max_inflight, _calls
    kind, payload = data
    with _lock:
        _calls += 1
        _inflight += 1
        _max_inflight = max(_max_inflight, _inflight)
        stats = os.environ.get("TEST_STATS_DIR")
        if stats:
            with open(os.path.join(stats, f"{os.getpid()}.json"), "w") as f:
                json.dump({"max_inflight": _max_inflight, "calls": _calls}, f)
    try:
        return kind, [_value(r, model) for r in _rows_of(kind, payload)]
    finally:
        with _lock:
            _inflight -= 1


def output_fn(prediction, accept):
    kind, rows = prediction
    if accept == "text/csv":
        return "".join(f"{v}\n" for r in rows for v in r), "text/csv"
    if accept == "application/jsonlines":
        return "".join(json.dumps({"sum": v}) + "\n" for r in rows for v in r), accept
    if kind == "json" and len(rows) == 1:
        return json.dumps({"sum": rows[0][0]}), "application/json"
    return json.dumps([{"sum": r[0]} for r in rows]), "application/json"
