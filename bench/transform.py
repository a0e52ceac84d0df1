"""bench/transform: the local Batch Transform runtime against the in-process predict_fn floor.

    .venv/bin/python bench/transform.py [--records 3000] [--reps 7]

Model: the real network (transform_code, 1,400 stations), untrained: the cost does not depend
on the weights. Input: the real nightly's windows (the one window path on sample_data,
2022-05-25), the first --records CSV lines. Thread budget T = the machine's cores.

  floor        predict_fn on the decoded records in a fresh process with T threads and the
               environment a one-instance server gets (local.server_thread_env)
  multirecord  the nightly job: 1 instance, MaxConcurrentTransforms 1, MultiRecord, 6 MB,
               InputFilter $[1:], JoinSource Input, OutputFilter $[0,-3:]; rate over
               ProcessingSeconds (server start excluded). Goal: >= 0.8 x the floor.
  ic2_mct1     the same records in 4 objects (1 MB payloads) on 2 instances, vs ic1_mct1:
               each server gets T / instances threads; goal: not slower (>= 1.0).
  ic1_mct2     one instance, two requests at once, vs ic1_mct1 (one run, reported only).
Each ratio is min(case) / min(floor) over --reps interleaved repetitions, with the spread,
then the median of the repetitions' own ratios (each pairs cases measured seconds apart).
The profile (CPU seconds of each step in one process, same records) says where the time goes
between the floor and the job; the rest of the job's time is HTTP, object I/O and waiting.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

from bench_results import save

from velibcast.batch_transform import dataplane as dp
from velibcast.batch_transform.local import LocalRuntime, server_thread_env
from velibcast.datasets.assemble import assemble_transform_inputs
from velibcast.datasets.windows import origins_for_run_date
from velibcast.storage import Storage
from velibcast.training.synthetic import untrained_archive

REPO = Path(__file__).resolve().parents[1]
N_STATIONS = 1400
NIGHTLY_DP = {"InputFilter": "$[1:]", "OutputFilter": "$[0,-3:]", "JoinSource": "Input"}
GOAL_MULTIRECORD, GOAL_INSTANCES = 0.8, 1.0


def make_inputs(work: Path, n: int) -> tuple[str, list[bytes]]:
    """model.tar.gz path and the first n CSV lines of the real nightly's windows."""
    model = work / "model.tar.gz"
    model.write_bytes(untrained_archive(N_STATIONS, seed=0))
    r = assemble_transform_inputs(Storage(), str(REPO / "sample_data"), origins_for_run_date(date(2022, 5, 25)),
                                  str(work / "windows" / "in"), report_uri=str(work / "windows-report.json"))
    lines = [ln for u in r.shards for ln in Path(u).read_bytes().splitlines(keepends=True)]
    return str(model), lines[:n]


def spec(name: str, inp: str, out: str, instances: int = 1, mct: int = 1, payload_mb: int = 6) -> dict:
    return {
        "TransformJobName": name, "ModelName": "bench-model", "MaxConcurrentTransforms": mct,
        "MaxPayloadInMB": payload_mb, "BatchStrategy": "MultiRecord",
        "TransformInput": {"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": inp}},
                           "ContentType": "text/csv", "SplitType": "Line", "CompressionType": "None"},
        "TransformOutput": {"S3OutputPath": out, "Accept": "text/csv", "AssembleWith": "Line"},
        "TransformResources": {"InstanceType": "ml.m5.xlarge", "InstanceCount": instances},
        "DataProcessing": NIGHTLY_DP,
    }


# ---------------------------------------------------------------- child: the in-process floor and profile
def child_floor(model_tar: str, data_path: str, threads: int) -> dict:
    from velibcast.training.package import extract
    from velibcast.transform_code import inference

    model = inference.model_fn(str(extract(Path(model_tar).read_bytes(), Path(tempfile.mkdtemp()))))
    body = b"".join(ln.split(b",", 1)[1] for ln in Path(data_path).read_bytes().splitlines(keepends=True))
    decoded = inference.input_fn(body.decode(), "text/csv")
    inference.predict_fn(decoded, model)  # warm-up: the first call allocates, as a server's first request
    t0, c0 = time.perf_counter(), time.process_time()
    inference.predict_fn(decoded, model)
    return {"wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0, "threads": threads}


def child_profile(model_tar: str, data_path: str, threads: int) -> dict:
    """CPU seconds of each step the job adds around predict_fn, on the same records."""
    from velibcast.training.package import extract
    from velibcast.transform_code import inference

    model = inference.model_fn(str(extract(Path(model_tar).read_bytes(), Path(tempfile.mkdtemp()))))
    gc.freeze()  # as the server does after loading the model
    data = Path(data_path).read_bytes()
    proc = dp.Processing.from_spec(spec("p", "s3://b/in", "s3://b/out"), "MultiRecord", 6, dp.DataPlaneSettings(),
                                   "2022-05-25T00:00:00Z")
    steps: dict[str, float] = {}

    def step(name, fn):
        c0 = time.process_time()
        out = fn()
        steps[name] = round(time.process_time() - c0, 4)
        return out

    prepared = step("split + InputFilter + pack (dataplane.prepare)", lambda: dp.prepare("o", data, proc))
    texts = step("request bodies bytes -> str (handlers)", lambda: [b.payload.decode() for b in prepared.batches])
    decoded = step("input_fn (CSV decode)", lambda: [inference.input_fn(t, "text/csv") for t in texts])
    inference.predict_fn(decoded[0], model)
    preds = step("predict_fn", lambda: [inference.predict_fn(d, model) for d in decoded])
    outs = step("output_fn (CSV encode)", lambda: [inference.output_fn(p, "text/csv") for p in preds])
    resp = [o[0] if isinstance(o, tuple) else o for o in outs]
    resp = [o.encode() if isinstance(o, str) else bytes(o) for o in resp]
    step("join + OutputFilter (dataplane.assemble)", lambda: dp.assemble(prepared, resp, proc))
    return steps


# ---------------------------------------------------------------- parent
def run_child(kind: str, model_tar: str, data_path: str, threads: int) -> dict:
    """With the environment a one-instance server gets (server_thread_env): the same thread budget and wait policy."""
    env = {**os.environ, **server_thread_env(1, 1)}
    p = subprocess.run([sys.executable, __file__, "--child", kind, model_tar, data_path, str(threads)],
                       capture_output=True, text=True, cwd=REPO, env=env)
    if p.returncode:
        raise SystemExit(f"bench/transform {kind} failed:\n{p.stderr}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def run_job(rt, storage, work: Path, key: str, objects: dict[str, bytes], **kw) -> dict:
    base = work / f"{key}-{time.monotonic_ns()}"
    for rel, data in objects.items():
        storage.write_bytes(str(base / "in" / rel), data)
    t0 = time.perf_counter()
    d = rt.create_transform_job(spec(key.replace("_", "-") + f"-{time.monotonic_ns() % 10**9}",
                                     str(base / "in") + "/", str(base / "out"), **kw))
    wall = time.perf_counter() - t0
    if d["TransformJobStatus"] != "Completed":
        raise SystemExit(f"bench/transform {key}: {d.get('FailureReason')}")
    return {"wall_s": wall, **d["LocalTimings"]}


def spread(xs: list[float]) -> str:
    return f"{min(xs):.3f}..{max(xs):.3f} s"


def measure(a, threads: int) -> tuple[int, dict[str, list[dict]], dict[str, float]]:
    """The floor and the job cases, interleaved --reps times, then the profile: (records, runs, profile)."""
    work = Path(tempfile.mkdtemp(prefix="bench-transform-"))
    model_tar, lines = make_inputs(work, a.records)
    n = len(lines)
    data_path = work / "records.csv"
    data_path.write_bytes(b"".join(lines))
    quarter = (n + 3) // 4
    four = {f"part-{i}.csv": b"".join(lines[i * quarter:(i + 1) * quarter]) for i in range(4)}

    storage = Storage()
    rt = LocalRuntime(storage, str(work / "state"))
    rt.create_model("bench-model", model_tar)
    runs: dict[str, list[dict]] = {k: [] for k in ("floor", "multirecord", "ic1_mct1", "ic2_mct1", "ic1_mct2")}
    try:
        for rep in range(a.reps):
            runs["floor"].append(run_child("floor", model_tar, str(data_path), threads))
            runs["multirecord"].append(run_job(rt, storage, work, "multirecord", {"part-0.csv": b"".join(lines)}))
            runs["ic1_mct1"].append(run_job(rt, storage, work, "ic1_mct1", four, payload_mb=1))
            runs["ic2_mct1"].append(run_job(rt, storage, work, "ic2_mct1", four, instances=2, payload_mb=1))
            print(f"  repetition {rep + 1}/{a.reps} done (load {os.getloadavg()[0]:.1f})", flush=True)
        runs["ic1_mct2"].append(run_job(rt, storage, work, "ic1_mct2", four, mct=2, payload_mb=1))  # once: reported
        profile = run_child("profile", model_tar, str(data_path), threads)
    finally:
        rt.close()
    return n, runs, profile


def report(n: int, threads: int, runs: dict[str, list[dict]], profile: dict[str, float]) -> dict[str, Any]:
    """Rates, ratios against their goals and the profile, printed; returns the results to save."""
    secs = {k: [r["wall_s"] if k == "floor" else r["ProcessingSeconds"] for r in v] for k, v in runs.items()}
    best = {k: min(v) for k, v in secs.items()}
    rate = {k: n / best[k] for k in best}
    print(f"{n:,} records of the real nightly, real network (untrained), thread budget {threads}")
    print(f"  floor predict_fn in-process: {rate['floor']:,.0f} rec/s (spread {spread(secs['floor'])}, "
          f"{runs['floor'][0]['threads']} threads)")
    for k in ("multirecord", "ic1_mct1", "ic2_mct1", "ic1_mct2"):
        print(f"  {k:<12} {rate[k]:>10,.0f} rec/s over ProcessingSeconds (spread {spread(secs[k])}; "
              f"server start {min(r['ContainerStartSeconds'] for r in runs[k]):.2f} s excluded)")
    r_mr = rate["multirecord"] / rate["floor"]
    r_ic = rate["ic2_mct1"] / rate["ic1_mct1"]
    r_mct = rate["ic1_mct2"] / rate["ic1_mct1"]
    print(f"  ratio multirecord / floor = {r_mr:.2f}; goal >= {GOAL_MULTIRECORD}: "
          f"{'met' if r_mr >= GOAL_MULTIRECORD else 'NOT met'}")
    print(f"  ratio 2 instances x {max(1, threads // 2)} thread(s) / 1 instance x {threads} = {r_ic:.2f}; "
          f"goal >= {GOAL_INSTANCES}: {'met' if r_ic >= GOAL_INSTANCES else 'NOT met'}")
    print(f"  ratio MaxConcurrentTransforms 2 / 1 (one instance) = {r_mct:.2f} (reported)")
    # The mins above come from different moments; on a shared machine one case can catch two
    # free cores and the other not (floor 0.21 s with both cores, 0.37-0.42 s with one). Each
    # repetition's own ratio, its neighbours measured within seconds, says how steady that is.
    paired_mr = sorted(f / j for f, j in zip(secs["floor"], secs["multirecord"]))
    paired_ic = sorted(one / two for one, two in zip(secs["ic1_mct1"], secs["ic2_mct1"]))
    print(f"  per repetition: multirecord / floor median {statistics.median(paired_mr):.2f} "
          f"({paired_mr[0]:.2f}..{paired_mr[-1]:.2f}); ic2_mct1 / ic1_mct1 median "
          f"{statistics.median(paired_ic):.2f} ({paired_ic[0]:.2f}..{paired_ic[-1]:.2f})")
    total = sum(profile.values())
    print(f"  profile, CPU seconds in one process ({total:.3f} s in all):")
    for name, s in profile.items():
        print(f"    {name:<48} {s:8.3f} s  {s / total:6.1%}")
    print(f"    job ProcessingSeconds (best) {best['multirecord']:.3f} s; the rest is HTTP framing, object "
          "reads/writes and waiting for the cores")
    return {"records": n, "threads": threads, "load_average": os.getloadavg()[0], "runs": runs, "rates": rate,
            "profile_cpu_s": profile, "ratios": {"multirecord_vs_floor": r_mr, "ic2_vs_ic1": r_ic, "mct2_vs_mct1": r_mct,
                                                 "multirecord_vs_floor_per_rep": paired_mr,
                                                 "ic2_vs_ic1_per_rep": paired_ic}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--child", nargs=4)
    ap.add_argument("--records", type=int, default=3000)
    ap.add_argument("--reps", type=int, default=7)  # 5 left the ratio between 0.75 and 1.00 from run to run
    a = ap.parse_args()
    if a.child:
        kind, model_tar, data_path, threads = a.child
        fn = {"floor": child_floor, "profile": child_profile}[kind]
        print(json.dumps(fn(model_tar, data_path, int(threads))))
        return
    threads = os.cpu_count() or 1
    print(f"bench/transform: {threads} cpus = the thread budget, load average {os.getloadavg()[0]:.1f} "
          "(the machine is shared: figures are noisy, hence min of interleaved repetitions)")
    n, runs, profile = measure(a, threads)
    save("transform", report(n, threads, runs, profile))


if __name__ == "__main__":
    main()
