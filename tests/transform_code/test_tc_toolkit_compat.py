"""Conformance: the same requests through AWS's serving stack and through ours.

AWS side: the sagemaker-inference toolkit's Transformer with sagemaker-pytorch-inference's
default handler, driven in-process as AWS's PyTorch container drives it (code/ on sys.path,
SAGEMAKER_PROGRAM=inference.py). Our side: `python -m velibcast.batch_transform.server`
as a real process over HTTP. Successful responses must be byte-identical with the same
content type; failures must have the same status, and the toolkit's message (its first
line, before the traceback it appends) must be our server's body.
"""

import http.client
import json
import os
import subprocess
import sys

import pytest

# AWS's toolkits are test dependencies (pyproject's `test` extra): imported, not skipped when missing.
from sagemaker_inference.transformer import Transformer
from sagemaker_pytorch_serving_container.default_pytorch_inference_handler import DefaultPytorchInferenceHandler

from tests.helpers import free_port, wait_for_ping

# The one place the stacks must differ: the toolkit decodes text/csv and application/json
# bodies itself, before inference.py runs, and answers 500 to bytes that are not UTF-8.
# Our server answers 400 (it is the client's fault). Nothing in inference.py can change the
# toolkit's answer, so the test pins the difference instead of hiding it.
TOOLKIT_DECODES_FIRST = {"csv-not-utf8"}


def corpus(features, to_csv):
    feats = features(40, seed=11)
    unknown = features(3, seed=12)
    unknown[1]["station_index"] = 0
    full = [{"record_id": f"{10000 + i}@2022-05-26T08:00Z", "station_code": f"{10000 + i}",
             "origin_ts": "2022-05-26T08:00:00Z", "features": f} for i, f in enumerate(feats[:5])]
    csv = to_csv(feats).encode()
    nan_line = to_csv(feats[:3]).splitlines()
    cols = nan_line[2].split(",")
    cols[3] = "NaN"
    nan_line[2] = ",".join(cols)
    jl = "".join(json.dumps(f) + "\n" for f in feats[:7]).encode()
    return [
        ("csv-batch", "text/csv", "text/csv", csv),
        ("csv-one", "text/csv", "text/csv", to_csv(feats[:1]).encode()),
        ("csv-charset-crlf", "text/csv; charset=utf-8", "text/csv", csv.replace(b"\n", b"\r\n")),
        ("csv-accept-json", "text/csv", "application/json", csv),
        ("csv-accept-jsonlines", "text/csv", "application/jsonlines", csv),
        ("csv-no-accept", "text/csv", None, csv),
        ("csv-accept-any", "text/csv", "*/*", csv),
        ("jsonl-features", "application/jsonlines", "application/jsonlines", jl),
        ("jsonl-full", "application/jsonlines", "application/jsonlines",
         "".join(json.dumps(r) + "\n" for r in full).encode()),
        ("jsonl-to-csv", "application/jsonlines", "text/csv", jl),
        ("json-object", "application/json", "application/json", json.dumps(feats[0]).encode()),
        ("json-list", "application/json", "application/json", json.dumps(feats[:4]).encode()),
        ("json-unknown-station", "application/json", "application/json", json.dumps(unknown).encode()),
        ("empty", "text/csv", "text/csv", b""),
        ("csv-nan", "text/csv", "text/csv", "\n".join(nan_line).encode()),
        ("csv-30-columns", "text/csv", "text/csv", b"1," * 29 + b"1\n"),
        ("csv-station-out-of-range", "text/csv", "text/csv",
         to_csv([dict(feats[0], station_index=999)]).encode()),
        ("jsonl-not-utf8", "application/jsonlines", "application/jsonlines", jl + b"\xff\xfe\n"),
        ("csv-not-utf8", "text/csv", "text/csv", csv + b"\xff\n"),
        ("json-bad", "application/json", "application/json", b"{\"history\": "),
        ("unsupported-type", "application/x-npy", "text/csv", b"\x93NUMPY"),
        ("unsupported-accept", "text/csv", "application/xml", csv),
    ]


class _Ctx:
    """The slice of the model server's context object the Transformer uses."""

    def __init__(self, model_dir, content_type, accept):
        headers = {} if content_type is None else {"Content-Type": content_type}
        if accept is not None:
            headers["Accept"] = accept
        outer = self

        class _Req:
            def get_request_properties(self):
                return headers

        self.system_properties = {"model_dir": str(model_dir)}
        self.request_processor = [_Req()]
        self.status = 200
        self.content_type = None

        def set_response_content_type(idx, ct):
            outer.content_type = ct

        def set_response_status(code=200, phrase="", idx=0):
            outer.status = code

        self.set_response_content_type = set_response_content_type
        self.set_response_status = set_response_status


@pytest.fixture(scope="module", params=["untrained", "fitted"])
def family_dir(request, model_dir, tmp_path_factory):
    """The gbm family with random trees, and fitted on a synthetic archive with its calibrated distribution."""
    if request.param == "untrained":
        return model_dir
    from velibcast.training.package import extract
    from velibcast.training.synthetic import gbm_archive

    d = extract(gbm_archive(20, seed=3), tmp_path_factory.mktemp("gbm-model"))
    assert {p.name for p in d.iterdir() if p.suffix == ".json"} == {
        "config.json", "station_mappings.json", "metadata.json", "trees.json", "profiles.json", "event_profiles.json",
        "distribution.json"}
    return d


@pytest.fixture(scope="module")
def toolkit(family_dir):
    model_dir = family_dir
    """AWS's Transformer on our code/ folder."""
    mp = pytest.MonkeyPatch()
    mp.setenv("SAGEMAKER_PROGRAM", "inference.py")
    mp.syspath_prepend(str(model_dir / "code"))
    for name in [m for m in sys.modules if m == "inference" or m.startswith("velib_")]:
        mp.delitem(sys.modules, name)
    transformer = Transformer(default_inference_handler=DefaultPytorchInferenceHandler())

    def call(body, content_type, accept):
        ctx = _Ctx(model_dir, content_type, accept)
        out = transformer.transform([{"body": body}], ctx)[0]
        return ctx.status, ctx.content_type, out.encode() if isinstance(out, str) else out

    yield call
    mp.undo()
    for name in [m for m in sys.modules if m == "inference" or m.startswith("velib_")]:
        del sys.modules[name]


@pytest.fixture(scope="module")
def server(family_dir):
    model_dir = family_dir
    port = free_port()
    env = dict(os.environ, SAGEMAKER_PROGRAM="inference.py")
    proc = subprocess.Popen([sys.executable, "-m", "velibcast.batch_transform.server", "--model-dir", str(model_dir),
                             "--port", str(port), "--host", "127.0.0.1"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for_ping(f"http://127.0.0.1:{port}", proc)
    except AssertionError as e:
        proc.kill()
        pytest.fail(f"server did not start: {e}")

    def call(body, content_type, accept):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        headers = {"Content-Length": str(len(body))}
        if content_type is not None:
            headers["Content-Type"] = content_type
        if accept is not None:
            headers["Accept"] = accept
        conn.request("POST", "/invocations", body=body, headers=headers)
        r = conn.getresponse()
        return r.status, r.getheader("Content-Type"), r.read()

    yield call
    proc.terminate()
    proc.wait(timeout=30)


def test_toolkit_and_server_give_identical_responses(toolkit, server, features, to_csv):
    seen_ok = seen_err = 0
    for name, ctype, accept, body in corpus(features, to_csv):
        t_status, t_type, t_body = toolkit(body, ctype, accept)
        s_status, s_type, s_body = server(body, ctype, accept)
        if name in TOOLKIT_DECODES_FIRST:
            assert (t_status, s_status) == (500, 400), name
            continue
        assert t_status == s_status, f"{name}: toolkit {t_status} {t_body[:300]!r}, server {s_status} {s_body[:300]!r}"
        if t_status == 200:
            seen_ok += 1
            assert t_body == s_body, name
            assert s_type.split(";")[0] == t_type, name
        else:
            seen_err += 1
            assert 400 <= t_status < 500, f"{name}: bad input must be a 4xx, got {t_status}"
            message = t_body.decode().split("\n", 1)[0]
            assert message and s_body.decode().startswith(message), name
    assert seen_ok >= 10 and seen_err >= 7
