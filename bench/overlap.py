"""bench/overlap: MaxConcurrentTransforms overlaps objects on one instance (divergence 2 in batch_transform/README.md).

    .venv/bin/python bench/overlap.py [--reps 5] [--seconds 1]

Model: a one-file SageMaker PyTorch-contract model written here, whose predict_fn sleeps
--seconds per request (nothing else runs, so the case measures scheduling, not compute).
Input: objects of one record each, SplitType None, so every object is one request.

  floor       1 object, MaxConcurrentTransforms 1
  mct4        4 objects, MaxConcurrentTransforms 4: the objects overlap; goal about 1 x the floor
  mct1        4 objects, MaxConcurrentTransforms 1: one after the other, about 4 x (reported)
Each ratio is min(case) / min(floor) over --reps interleaved repetitions of ProcessingSeconds
(servers up; the container start is excluded), with the spread.
"""

from __future__ import annotations

import argparse
import tarfile
import tempfile
import time
from pathlib import Path

from velibcast.batch_transform.local import LocalRuntime
from velibcast.storage import Storage

GOAL_MCT4 = 1.3  # 4 overlapped one-second requests within 1.3 x one request

SLEEPY_MODEL = '''
import time

def model_fn(model_dir):
    return None

def input_fn(body, content_type):
    return body

def predict_fn(data, model):
    time.sleep({seconds})
    return data

def output_fn(prediction, accept):
    return b"1\\n"
'''


def make_model(work: Path, seconds: float) -> str:
    code = work / "model" / "code"
    code.mkdir(parents=True)
    (code / "inference.py").write_text(SLEEPY_MODEL.format(seconds=seconds))
    tar = work / "model.tar.gz"
    with tarfile.open(tar, "w:gz") as t:
        t.add(code, arcname="code")
    return str(tar)


def processing_s(rt: LocalRuntime, storage: Storage, work: Path, key: str, n_objects: int, mct: int) -> float:
    base = work / f"{key}-{time.monotonic_ns()}"
    for i in range(n_objects):
        storage.write_bytes(str(base / "in" / f"{i}.csv"), b"1\n")
    d = rt.create_transform_job({
        "TransformJobName": f"{key}-{time.monotonic_ns() % 10**9}", "ModelName": "sleepy",
        "MaxConcurrentTransforms": mct, "BatchStrategy": "SingleRecord",
        "TransformInput": {"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": str(base / "in") + "/"}},
                           "ContentType": "text/csv", "SplitType": "None"},
        "TransformOutput": {"S3OutputPath": str(base / "out")},
        "TransformResources": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1},
    })
    if d["TransformJobStatus"] != "Completed":
        raise SystemExit(f"bench/overlap {key}: {d.get('FailureReason')}")
    return float(d["LocalTimings"]["ProcessingSeconds"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=1.0)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-overlap-"))
    storage = Storage()
    rt = LocalRuntime(storage, str(work / "state"))
    rt.create_model("sleepy", make_model(work, args.seconds))
    runs: dict[str, list[float]] = {"floor": [], "mct4": [], "mct1": []}
    try:
        for _ in range(args.reps):  # interleaved: a busy moment of the machine hits every case alike
            runs["floor"].append(processing_s(rt, storage, work, "floor", 1, 1))
            runs["mct4"].append(processing_s(rt, storage, work, "mct4", 4, 4))
            runs["mct1"].append(processing_s(rt, storage, work, "mct1", 4, 1))
    finally:
        rt.close()
    floor = min(runs["floor"])
    print(f"overlap: {args.reps} interleaved repetitions, one request = {args.seconds:g} s of sleep")
    for key, xs in runs.items():
        print(f"  {key:<6} min {min(xs):6.2f} s  spread {min(xs):.2f}..{max(xs):.2f} s  = {min(xs) / floor:5.2f} x floor")
    ratio = min(runs["mct4"]) / floor
    print(f"goal 4 objects at MaxConcurrentTransforms 4 <= {GOAL_MCT4} x one object: "
          f"{ratio:.2f} x, {'met' if ratio <= GOAL_MCT4 else 'NOT met'}")


if __name__ == "__main__":
    main()
