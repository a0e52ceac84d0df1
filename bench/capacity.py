"""bench/capacity: what a day-ahead night and a day of hourly nowcasts need at 1,500 / 15,000 / 150,000 stations.

    .venv/bin/python bench/capacity.py [--reps 3] [--write docs/capacity-plan.md]

Both products run the same stages for one origin (products.py): windows -> Batch Transform ->
join; they differ in the horizons kept from the model's output (day-ahead 1..24, nowcast 1..3)
and in how often they run (day-ahead once a night, nowcast 24 times a day). The model computes
every horizon for every record either way (feature contract 4: OUTPUT_COLUMNS, 7 values per
horizon), so a run's window and transform costs are the same for both products.

Measured on this machine, each case in a fresh process, minimum of --reps interleaved repetitions,
at 1,500 and 15,000 synthetic stations (datasets/synthetic.py, 2 days, states ingested):
  window stage   assemble_transform_inputs for one origin as of the end of the store, reading the
                 stored hourly states (what stages.py runs): wall, CPU, peak memory, windows.
  model server   one model server process of the transform: model_fn (load), then the request
                 chain over one shard of the run (InstanceCount 1) in MaxPayloadInMB requests, with one
                 compute thread: dataplane.prepare (split + InputFilter + pack), input_fn,
                 predict_fn, output_fn, dataplane.assemble (join + OutputFilter). CPU seconds per
                 record and the process's peak memory. The model is full size: the trees of
                 untrained_archive replaced by GBM_HORIZON_GROUPS x GBM_ROUNDS trees of depth
                 GBM_MAX_DEPTH (predict_fn's cost is trees x depth per record and horizon; a
                 fitted model's trees are at most that deep, so this is an upper bound).
Extrapolated: 150,000 stations, on the line through the two measured station counts.
Derived (plan): each InstanceCount's share of the records, its processing time, billed time and
cost (flows/cost.py's estimate with configs/pricing.yaml), from ASSUMPTIONS, printed with the plan.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from bench_results import child, once, peak_mb, save

from velibcast import constants as C
from velibcast.batch_transform import dataplane as dp
from velibcast.batch_transform.local import server_thread_env
from velibcast.datasets import ingest as ing
from velibcast.datasets.assemble import assemble_transform_inputs
from velibcast.datasets.records import layout_for, shard_count_for
from velibcast.datasets.synthetic import generate_store
from velibcast.datasets.windows import latest_origin
from velibcast.flows import cost
from velibcast.flows.products import DAY_AHEAD, NOWCAST
from velibcast.storage import Storage
from velibcast.timeutil import UTC, iso_second
from velibcast.training import package
from velibcast.training.synthetic import untrained_archive
from velibcast.transform_code import inference, velib_gbm
from velibcast.transform_code import velib_features as F

REPO = Path(__file__).resolve().parents[1]
MEASURED = (1_500, 15_000)
STATIONS = (1_500, 15_000, 150_000)
INSTANCES = (1, 4, 16)
SYN_START = datetime(2024, 1, 1, tzinfo=UTC)
AS_OF = SYN_START + timedelta(days=2) - timedelta(minutes=1)  # the end of the second day
AWS = yaml.safe_load((REPO / "configs" / "aws.yaml").read_text())["transform"]
ASSUMPTIONS: dict[str, Any] = {
    "instance_type": AWS["instance_type"],                          # configs/aws.yaml
    "max_concurrent_transforms": AWS["max_concurrent_transforms"],  # configs/aws.yaml
    "max_payload_mb": AWS["max_payload_mb"],                        # configs/aws.yaml
    "instance_cores": 2,        # an ml.m5.xlarge's 4 vCPUs are 2 physical cores; one here ~ one there
    "provisioning_s": 300,      # CreateTransformJob -> TransformStartTime: not billed; not measured here
    "container_start_s": 60,    # image pull + server start, billed; not measured here (model load is)
    "region": "eu-west-3",      # configs/pricing.yaml prices it with us-east-1's table
}
RUNS_PER_DAY = {DAY_AHEAD.name: 1, NOWCAST.name: 24}


# ---------------------------------------------------------------- cases (child processes)
def case_setup(spec: dict) -> dict:
    """The synthetic store of `stations` x 2 days and its ingested hourly states, made once."""
    root, n = Path(spec["root"]), spec["stations"]
    t0 = time.perf_counter()
    if not (root / "velib").exists():
        generate_store(Storage(), str(root), n, 2, SYN_START, missed_capture_rate=0)
    if not (root / "states").exists():
        ing.ingest(Storage(), str(root), str(root), SYN_START, SYN_START + timedelta(days=2))
    return {"wall_s": time.perf_counter() - t0}


def synthetic_station_index(n: int) -> dict[str, int]:
    """Every synthetic station known to the model, as in production (datasets/synthetic.py's codes)."""
    return {str(100000 + i): i + 1 for i in range(n)}


def case_window(spec: dict) -> dict:
    """The window stage of one run (stages.py): one origin, as of the store's end, states read."""
    storage, n = Storage(), spec["stations"]
    origin = latest_origin(storage, spec["root"], AS_OF)
    assert origin is not None
    out = spec["out"]
    t0, c0 = time.perf_counter(), time.process_time()
    r = assemble_transform_inputs(storage, spec["root"], [origin], out + "/in", station_index=synthetic_station_index(n),
                                  index_uri=out + "/index.parquet", report_uri=out + "/assembly.json",
                                  shard_count=shard_count_for(1, ASSUMPTIONS["max_concurrent_transforms"]),
                                  as_of=AS_OF, states_root=spec["root"])
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    s = r.summary
    return {"wall_s": wall, "cpu_s": cpu, "windows": s["windows_emitted"], "snapshots_read": s["snapshots_read"],
            "shards": r.shards, "bytes": sum(os.path.getsize(p) for p in r.shards)}


def full_size_trees(seed: int = 0) -> dict:
    """GBM_HORIZON_GROUPS x GBM_ROUNDS trees, each GBM_MAX_DEPTH splits deep (a chain: predict_fn walks
    every tree `depth` steps whatever its shape, so only the count and the depth set its cost)."""
    rng = np.random.default_rng(seed)
    n_feat, depth = len(velib_gbm.DERIVED_FEATURES), C.GBM_MAX_DEPTH
    ensembles = []
    for first, last in C.GBM_HORIZON_GROUPS:
        nodes: dict[str, list] = {"feature": [], "threshold": [], "left": [], "right": [], "value": []}
        roots = []
        for _ in range(C.GBM_ROUNDS):
            base = len(nodes["feature"])
            roots.append(base)
            # splits at base + 2k, their left leaves at base + 2k + 1, the last split's right leaf at the end
            for k in range(depth):
                split, leaf = base + 2 * k, base + 2 * k + 1
                nodes["feature"] += [int(rng.integers(n_feat)), 0]
                nodes["threshold"] += [float(rng.normal()), None]
                nodes["left"] += [leaf, leaf]
                nodes["right"] += [split + 2, leaf]
                nodes["value"] += [0.0, float(rng.normal(0, 0.01))]
            end = base + 2 * depth
            nodes["feature"].append(0)
            nodes["threshold"].append(None)
            nodes["left"].append(end)
            nodes["right"].append(end)
            nodes["value"].append(float(rng.normal(0, 0.01)))
        ensembles.append({"horizons": [first, last], "nodes": nodes, "roots": roots, "depth": depth})
    return {"ensembles": ensembles}


def full_size_archive(n_stations: int) -> bytes:
    """untrained_archive's model for n_stations with full-size trees."""
    with tempfile.TemporaryDirectory() as d:
        model_dir = package.extract(untrained_archive(n_stations, seed=0), Path(d))
        artifacts = {p.name: json.loads(p.read_text()) for p in model_dir.glob("*.json")}
    artifacts[velib_gbm.TREES] = full_size_trees()
    return package.build_archive(artifacts)


def case_server(spec: dict) -> dict:
    """One model server process: load, then the request chain over the records, one request at a time."""
    t0 = time.perf_counter()
    model = inference.model_fn(str(package.extract(Path(spec["model"]).read_bytes(), Path(tempfile.mkdtemp()))))
    load_s = time.perf_counter() - t0
    loaded_mb = peak_mb()
    data = Path(spec["data"]).read_bytes()
    layout = layout_for("csv")
    job = {"TransformInput": {"ContentType": "text/csv", "SplitType": "Line", "CompressionType": "None",
                              "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://b/in/"}}},
           "TransformOutput": {"S3OutputPath": "s3://b/out", "Accept": "text/csv", "AssembleWith": "Line"},
           "DataProcessing": {"InputFilter": layout.input_filter, "OutputFilter": layout.output_filter,
                              "JoinSource": "Input"}}
    proc = dp.Processing.from_spec(job, "MultiRecord", ASSUMPTIONS["max_payload_mb"], dp.DataPlaneSettings(),
                                   iso_second(AS_OF))
    c0 = time.process_time()
    prepared = dp.prepare("records.csv", data, proc)
    responses = []
    for batch in prepared.batches:
        decoded = inference.input_fn(batch.payload.decode(), "text/csv")
        body = inference.output_fn(inference.predict_fn(decoded, model), "text/csv")
        body = body[0] if isinstance(body, tuple) else body
        responses.append(body.encode() if isinstance(body, str) else bytes(body))
    joined = dp.assemble(prepared, responses, proc)
    cpu = time.process_time() - c0
    records = data.count(b"\n")
    assert joined.count(b"\n") == records
    return {"wall_s": cpu, "cpu_s": cpu, "records": records, "requests": len(prepared.batches), "load_s": load_s,
            "input_bytes": len(data),
            "loaded_mb": loaded_mb, "output_bytes": len(joined)}


CASES = {"setup": case_setup, "window": case_window, "server": case_server}


# ---------------------------------------------------------------- measure
def measure(reps: int, work: Path) -> dict:
    stores = {n: work / f"capacity_s{n}_d2" for n in MEASURED}
    for n, root in stores.items():
        once(__file__, "setup", {"root": str(root), "stations": n})
    runs: dict[str, list[dict]] = {}
    servers: dict[int, tuple[str, str]] = {}
    for _ in range(reps):
        for n, root in stores.items():
            runs.setdefault(f"window_{n}", []).append(
                once(__file__, "window", {"root": str(root), "stations": n, "out": str(work / f"capacity_out_{n}")}))
            if n not in servers:  # one shard of InstanceCount 1's run (kept aside), and the model
                data, model = work / f"capacity_records_{n}.csv", work / f"capacity_model_{n}.tar.gz"
                data.write_bytes(Path(runs[f"window_{n}"][0]["shards"][0]).read_bytes())
                model.write_bytes(full_size_archive(n))
                servers[n] = (str(model), str(data))
            # one compute thread, as a server with its core to itself (local.server_thread_env)
            runs.setdefault(f"server_{n}", []).append(
                once(__file__, "server", {"model": servers[n][0], "data": servers[n][1]}, server_thread_env(1, 1, cpus=1)))
    out = {}
    for name, rs in runs.items():
        best = min(rs, key=lambda r: r["wall_s"])
        out[name] = {**{k: v for k, v in best.items() if k != "shards"}, "walls_s": [r["wall_s"] for r in rs],
                     "peak_rss_mb_max": max(r["peak_rss_mb"] for r in rs)}
    return out


# ---------------------------------------------------------------- derive
def line_through(n: int, points: dict[int, float]) -> float:
    """The value at n on the line through the measured (stations, value) points (exact at them)."""
    (n1, y1), (n2, y2) = sorted(points.items())
    return y1 + (y2 - y1) * (n - n1) / (n2 - n1)


def per_size(m: dict) -> dict[int, dict]:
    """Window stage and model server figures at each planned size: measured, or on the line."""
    keys = {"window_wall_s": ("window", "wall_s"), "window_peak_mb": ("window", "peak_rss_mb_max"),
            "windows": ("window", "windows"), "server_peak_mb": ("server", "peak_rss_mb_max"),
            "model_load_s": ("server", "load_s")}
    out = {}
    for n in STATIONS:
        row: dict[str, Any] = {"measured": n in MEASURED}
        for key, (case, field) in keys.items():
            points = {s: float(m[f"{case}_{s}"][field]) for s in MEASURED}
            row[key] = points[n] if n in points else line_through(n, points)
        row["windows"] = round(row["windows"])
        out[n] = row
    return out


def plan(m: dict) -> dict:
    A = ASSUMPTIONS
    big = m[f"server_{max(MEASURED)}"]
    cpu_per_record = big["cpu_s"] / big["records"]
    out_bytes_per_record = big["output_bytes"] / big["records"]
    prices = cost.load_prices(REPO / "configs" / "pricing.yaml")
    sizes = per_size(m)
    rows = []
    for n in STATIONS:
        s = sizes[n]
        for ic in INSTANCES:
            shards = shard_count_for(ic, A["max_concurrent_transforms"])
            # shards are dealt whole to instances; the busiest instance gets ceil(shards / ic) of them
            records = s["windows"] * math.ceil(shards / ic) / shards
            processing = records * cpu_per_record / min(A["instance_cores"], A["max_concurrent_transforms"])
            billed = A["container_start_s"] + s["model_load_s"] + processing
            # S3: the window stage writes the shards, index and report; each instance reads the model and
            # its shards and writes one output per shard; the join reads the outputs back.
            e = cost.estimate(prices, instance_type=A["instance_type"], instance_count=ic, seconds=billed,
                              s3_puts=2 * shards + 2, s3_gets=ic + 2 * shards, region=A["region"])
            row = {"stations": n, "measured": s["measured"], "instances": ic, "shards": shards,
                   "windows": s["windows"], "window_s": s["window_wall_s"], "window_peak_mb": s["window_peak_mb"],
                   "server_peak_mb": s["server_peak_mb"], "processing_s": processing, "billed_s": billed,
                   "job_wall_s": A["provisioning_s"] + billed,
                   "run_wall_s": s["window_wall_s"] + A["provisioning_s"] + billed,
                   "cost_per_run_usd": e["total"], "computation": e["computation"],
                   "prices_note": e["prices_note"]}
            for product, runs in RUNS_PER_DAY.items():
                row[f"cost_{product}_usd"] = runs * e["total"]
            rows.append(row)
    return {"rows": rows, "transform_cpu_s_per_record": cpu_per_record, "output_bytes_per_record": out_bytes_per_record,
            "sizes": {str(k): v for k, v in sizes.items()},
            "hourly_price": prices["regions"]["us-east-1"]["instance_hourly"][A["instance_type"]]}


# ---------------------------------------------------------------- report
def _stations(r: dict) -> str:
    return f"{r['stations']:,}" + ("" if r["measured"] else " (extrapolated)")


def table(p: dict, product: str) -> str:
    runs = RUNS_PER_DAY[product]
    what = "one night" if runs == 1 else f"one day ({runs} runs)"
    out = [f"| stations | InstanceCount | shards | windows | window stage | transform processing | billed per instance "
           f"| run wall (window + provisioning + billed) | flow peak memory | model server peak memory "
           f"| cost per run | cost of {what} |",
           "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in p["rows"]:
        out.append(f"| {_stations(r)} | {r['instances']} | {r.shards} | {r['windows']:,} | {r['window_s']:.1f} s | "
                   f"{r['processing_s']:,.1f} s | {r['billed_s']:,.0f} s | {r['run_wall_s'] / 60:,.1f} min | "
                   f"{r['window_peak_mb']:,.0f} MB | {r['server_peak_mb']:,.0f} MB | ${r['cost_per_run_usd']:.4f} | "
                   f"${r[f'cost_{product}_usd']:.3f} |")
    return "\n".join(out)


def measured_lines(m: dict) -> list[str]:
    out = []
    for n in MEASURED:
        w, s = m[f"window_{n}"], m[f"server_{n}"]
        out.append(f"{n:,} stations: window stage {w['wall_s']:.2f} s (spread {min(w['walls_s']):.2f}..{max(w['walls_s']):.2f}"
                   f" s, CPU {w['cpu_s']:.2f} s), {w['windows']:,} windows, {w['snapshots_read']} raw captures read, "
                   f"peak {w['peak_rss_mb_max']:.0f} MB; model server: load {s['load_s']:.2f} s, "
                   f"{s['cpu_s'] / s['records'] * 1e3:.3f} CPU ms per record over {s['records']:,} records in "
                   f"{s['requests']} request(s) of {s['input_bytes'] / s['requests'] / 1e6:.1f} MB (spread {min(s['walls_s']):.2f}..{max(s['walls_s']):.2f} s), "
                   f"peak {s['peak_rss_mb_max']:.0f} MB ({s['loaded_mb']:.0f} MB after loading the model)")
    return out


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--child", nargs=2)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--work", default=str(REPO / "bench" / ".work"))
    ap.add_argument("--write", help="also write the plan as Markdown to this file (docs/capacity-plan.md)")
    a = ap.parse_args()
    if a.child:
        return child(CASES, a.child[0], json.loads(a.child[1]))
    load_before = uptime()
    print(f"bench/capacity: {os.cpu_count()} cpus; {load_before}")
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    m = measure(a.reps, work)
    load_after = uptime()
    p = plan(m)
    for ln in measured_lines(m):
        print("measured: " + ln)
    print(f"assumed: {json.dumps(ASSUMPTIONS)}; {ASSUMPTIONS['instance_type']} at ${p['hourly_price']['price']}/h "
          f"({p['hourly_price']['source']})")
    for product in RUNS_PER_DAY:
        print(f"\n{product}:\n{table(p, product)}")
    print(f"\nload: before {load_before}; after {load_after}")
    now = datetime.now(UTC)
    save("capacity", {"measured": m, "plan": p, "assumptions": ASSUMPTIONS, "uptime_before": load_before,
                      "uptime_after": load_after, "reps": a.reps}, now)
    if a.write:
        write_doc(Path(a.write), p, m, iso_second(now), load_before, load_after, a.reps)
        print(f"wrote {a.write}")


def write_doc(path: Path, p: dict, m: dict, when: str, load_before: str, load_after: str, reps: int) -> None:
    A = ASSUMPTIONS
    measured = "\n".join(f"- {ln}" for ln in measured_lines(m))
    example = next(r for r in p["rows"] if r["stations"] == 15_000 and r["instances"] == 1)
    path.write_text(f"""# Capacity plan: day-ahead and nowcast on SageMaker Batch Transform

Generated by `.venv/bin/python bench/capacity.py --write docs/capacity-plan.md` on {when}, on a
{os.cpu_count()}-core machine shared with other work (`uptime` before: `{load_before}`; after:
`{load_after}`): each measured figure is the minimum of {reps} runs in fresh processes, and still
noisy. Re-run it after any change to the window path or the model.

Both products run the same stages for one origin: windows, then Batch Transform, then the join.
The model computes all {F.MAX_HORIZON} horizons of every record for either product (feature
contract {F.FEATURE_CONTRACT}: {len(F.OUTPUT_QUANTITIES)} values per horizon, `OUTPUT_COLUMNS`), so
one run costs the same for both; `day-ahead` (horizons 1..24) runs once a night, `nowcast`
(horizons 1..3) 24 times a day, each run its own transform job.

## What is measured, extrapolated and derived

| figure | how |
|---|---|
| window stage wall time, flow peak memory, windows | **measured** at 1,500 and 15,000 stations |
| model server CPU per record, model load, peak memory | **measured** at both sizes (the plan's CPU per record: 15,000 stations) |
| the same at 150,000 stations | **extrapolated** on the line through 1,500 and 15,000 (not measured: "(extrapolated)") |
| transform processing, billed time, run wall time | **derived** from the measured figures and the assumptions below |
| cost | **derived**: `flows/cost.py` `estimate` with `configs/pricing.yaml` |
| provisioning, container start | **assumed** ({A['provisioning_s']} s, {A['container_start_s']} s), never measured |
| the join and publish after the transform | **not measured** (it reads {p['output_bytes_per_record']:,.0f} bytes of output per record) |

## Day-ahead: one night

{table(p, DAY_AHEAD.name)}

## Nowcast: a day of 24 hourly runs

{table(p, NOWCAST.name)}

Columns: *shards* = InstanceCount x MaxConcurrentTransforms ({A['max_concurrent_transforms']}),
the `shard_count_for` the window stage writes, dealt whole to instances; *window stage* runs on
the flow's machine whatever the InstanceCount; *transform processing* = the busiest instance's
records x CPU seconds per record / {min(A['instance_cores'], A['max_concurrent_transforms'])} cores;
*billed per instance* = container start + model load + processing (Batch Transform bills
(TransformEndTime - TransformStartTime) x InstanceCount); *run wall* adds the window stage and
the unbilled provisioning, not the join. *flow peak memory* is the window stage's process;
*model server peak memory* is one server process with the model loaded, serving one shard of
InstanceCount 1's run one request at a time (requests of at most {A['max_payload_mb']} MB; the
model's size grows with the stations, a request's stops at that cap, so the 150,000 line is
high on the request's part); an instance serving {A['max_concurrent_transforms']} requests at once
with one process per request holds up to that many. *cost per run* = compute +
S3 requests, e.g. at 15,000 stations on one instance: {example['computation']} ({example['prices_note']}).

## Measured here

{measured}

- CPU per record used for the plan: {p['transform_cpu_s_per_record'] * 1e3:.3f} ms (one thread,
  the whole request chain: split + InputFilter, input_fn, predict_fn, output_fn, join + OutputFilter).
- The model is full size ({len(C.GBM_HORIZON_GROUPS)} horizon groups x {C.GBM_ROUNDS} trees of depth
  {C.GBM_MAX_DEPTH}, random splits; profiles, events and distribution from `untrained_archive`):
  predict_fn walks every tree to the ensemble's depth, so a fitted model, whose trees are at most
  that deep, costs at most this per record.
- Synthetic stores: `datasets/synthetic.py`, 2 days, no missed captures, states ingested
  (`datasets/ingest.py`); the run is the window stage of one origin as of the end of the second day.

## Assumptions (not measured here)

- {A['instance_type']} ({A['instance_cores']} physical cores of 4 vCPUs) processes records at
  {A['instance_cores']} x the one-thread rate measured here (one core here = one core there), and
  shards are dealt evenly (the busiest instance gets ceil(shards / InstanceCount) of them).
- Provisioning {A['provisioning_s']} s (not billed) and container start {A['container_start_s']} s
  (billed, before the model load, which is measured): read them from DescribeTransformJob
  (CreationTime, TransformStartTime) and the job's logs on the first real job, and replace these.
  At these sizes they are most of every run's wall time and cost, which is why more instances
  cost more and save little: InstanceCount 1 is enough up to 150,000 stations.
- Prices: `configs/pricing.yaml`, used through `flows/cost.py`; {A['region']} falls back to
  us-east-1 and every price there is unsourced (the table says so). It states no minimum billed
  time per job, so none is applied; the container start is billed in every job. S3 requests are
  counted (window stage PUTs, instance GETs and PUTs, the join's GETs); transfer inside the region is free.
- The 150,000-station figures assume the window stage and the model grow linearly in stations;
  the 1,500 -> 15,000 step is the only evidence here, and `bench/states.py` measures the window
  stage at 100,000 stations directly.
""")


if __name__ == "__main__":
    main()
