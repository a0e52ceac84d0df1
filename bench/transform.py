"""Records per second through the local Batch Transform runtime vs the in-process floor.

    .venv/bin/python bench/transform.py [--model-data model.tar.gz] [--records 34000]

Cases, all on the same synthetic nightly-sized input (record_id + 31 features per CSV line):
  floor_predict_fn   predict_fn in-process on all records at once (input already decoded)
  floor_handlers     input_fn + predict_fn + output_fn in-process on the filtered payload
  multirecord        the nightly job: MultiRecord, 6 MB, InputFilter $[1:], join, OutputFilter $[0,-3:]
  multirecord_plain  the same without DataProcessing (what filters + join cost)
  singlerecord       SingleRecord on a subset (one request per record)
  grid_icN_mctM      4 objects, MaxPayloadInMB=1: InstanceCount x MaxConcurrentTransforms
  overlap_mctM       4 objects of one 1-second request each (SplitType None, the tiny model's
                     `sleep1`), MaxConcurrentTransforms 1 and 4, against one such object (the
                     floor): MCT 4 should take about the floor (objects overlap), MCT 1 four times.
                     `--overlap-only` runs just this case (seconds, not minutes).
Runtime rates are given two ways: over ProcessingSeconds (servers up, steady state) and over
the job's wall time (server start included). Each runtime case is also compared with a
predict_fn floor measured just before it (`vs_adjacent_floor`), since the machine may be
shared. Goal: multirecord >= 0.8 x the floor.
Without --model-data the tests' tiny model (sums columns) is used.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "batch_transform"))

from velibcast.batch_transform import handlers as H  # noqa: E402
from velibcast.batch_transform.local import LocalRuntime  # noqa: E402
from velibcast.storage import Storage  # noqa: E402
from velibcast.timeutil import UTC  # noqa: E402

N_FEATURES = 31
NIGHTLY_DP = {"InputFilter": "$[1:]", "OutputFilter": "$[0,-3:]", "JoinSource": "Input"}


def synthetic_lines(n: int, n_stations: int, seed: int = 7) -> list[str]:
    """Plausible windows: 24 bike counts within capacity, then hour, dow, weekend, capacity,
    station index, lat, lon (the FEATURE_COLUMNS order)."""
    rnd = random.Random(seed)
    lines = []
    for i in range(n):
        cap = rnd.randint(12, 60)
        level = rnd.randint(0, cap)
        hist = [max(0, min(cap, level + rnd.randint(-3, 3))) for _ in range(24)]
        hour, dow = rnd.randint(0, 23), rnd.randint(0, 6)
        st = rnd.randint(1, n_stations)
        feats = hist + [hour, dow, int(dow >= 5), cap, st, round(48.8 + rnd.random() * 0.1, 6),
                        round(2.25 + rnd.random() * 0.2, 6)]
        lines.append(f"{st}@2022-05-26T{hour:02d}:00Z-{i}," + ",".join(str(v) for v in feats))
    return lines


def spec(name, inp, out, **over):
    d = {
        "TransformJobName": name, "ModelName": "bench-model",
        "TransformInput": {"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": inp}},
                           "ContentType": "text/csv", "SplitType": "Line"},
        "TransformOutput": {"S3OutputPath": out, "Accept": "text/csv", "AssembleWith": "Line"},
        "TransformResources": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1},
    }
    d.update(over)
    return d


def timed(fn, repeat=3) -> list[float]:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def best_of(fn, repeat=3) -> float:
    return min(timed(fn, repeat))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model-data", help="model.tar.gz path (default: the tests' tiny model)")
    ap.add_argument("--records", type=int, default=34_000)
    ap.add_argument("--single-subset", type=int, default=1_000)
    ap.add_argument("--out", default=str(REPO / "bench" / "results"))
    ap.add_argument("--overlap-only", action="store_true", help="only the MaxConcurrentTransforms overlap case")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-transform-"))
    if args.model_data:
        model_tar, model_kind = args.model_data, "given"
    else:
        from conftest import build_model_tar

        model_tar = str(work / "model.tar.gz")
        Path(model_tar).write_bytes(build_model_tar())
        model_kind = "tests' tiny model (sum of columns)"

    storage = Storage()
    rt = LocalRuntime(storage, str(work / "state"))
    rt.create_model("bench-model", model_tar)
    if args.overlap_only:
        if args.model_data:
            raise SystemExit("--overlap-only needs the tests' tiny model (its `sleep1` records)")
        results = {"cpus": os.cpu_count(), "python": platform.python_version(), "cases": {}}
        overlap_cases(rt, storage, work, results)
        rt.close()
        _save(results, args.out)
        return
    model_dir = rt._models["bench-model"].model_dir
    n_stations = 8
    mappings = Path(model_dir) / "station_mappings.json"
    if mappings.exists():
        n_stations = max(1, len(json.loads(mappings.read_text()).get("station_index", {})))
    lines = synthetic_lines(args.records, n_stations)
    payload_all = "".join(ln + "\n" for ln in lines)
    features_only = "".join(ln.split(",", 1)[1] + "\n" for ln in lines)
    results: dict = {"records": args.records, "model": model_kind, "model_data": model_tar,
                     "cpus": os.cpu_count(), "python": platform.python_version(), "cases": {}}

    # ---- the floor, in this process (the same loading code as the server)
    handlers = H.load(model_dir)
    mod = handlers.module
    try:
        import torch

        results["torch_threads_in_process"] = torch.get_num_threads()
    except ImportError:
        pass
    decoded = mod.input_fn(features_only, "text/csv")
    # The first call in a fresh process is cold (allocations, lazy init), as a server's first request.
    predict_times = timed(lambda: mod.predict_fn(decoded, handlers.model))
    t_predict = min(predict_times)
    results["floor_predict_fn_first_call_s"] = predict_times[0]
    t_chain = best_of(lambda: handlers.invoke(features_only.encode(), "text/csv", "text/csv"))
    results["cases"]["floor_predict_fn"] = {"seconds": t_predict, "records_per_s": args.records / t_predict}
    results["cases"]["floor_handlers"] = {"seconds": t_chain, "records_per_s": args.records / t_chain}

    def floor_now() -> float:
        return args.records / best_of(lambda: mod.predict_fn(decoded, handlers.model), repeat=2)

    def run_case(key, n_records, objects: dict[str, str], **over):
        # The machine may be shared: each case is compared with a floor measured just before it.
        adjacent = floor_now()
        inp, out = str(work / key / "in"), str(work / key / "out")
        for rel, text in objects.items():
            storage.write_text(f"{inp}/{rel}", text)
        t0 = time.perf_counter()
        d = rt.create_transform_job(spec(key.replace("_", "-"), inp, out, **over))
        wall = time.perf_counter() - t0
        assert d["TransformJobStatus"] == "Completed", d.get("FailureReason")
        lt = d["LocalTimings"]
        results["cases"][key] = {
            "records": n_records, "wall_s": round(wall, 3), **lt,
            "records_per_s": n_records / lt["ProcessingSeconds"],
            "records_per_s_wall": n_records / wall,
            "floor_adjacent_records_per_s": adjacent,
            "vs_adjacent_floor": (n_records / lt["ProcessingSeconds"]) / adjacent,
            "load_avg_1m": os.getloadavg()[0],
            "params": {k: over.get(k) for k in ("BatchStrategy", "MaxPayloadInMB", "MaxConcurrentTransforms")
                       if k in over} | {"InstanceCount": over.get("TransformResources", {}).get("InstanceCount", 1)},
        }
        print(f"  {key:<22} {results['cases'][key]['records_per_s']:>10,.0f} rec/s "
              f"(wall {wall:.2f} s incl. {lt['ContainerStartSeconds']:.2f} s server start; "
              f"adjacent floor {adjacent:,.0f} rec/s; load {os.getloadavg()[0]:.1f})", flush=True)

    print(f"floor: predict_fn {args.records / t_predict:,.0f} rec/s, handlers {args.records / t_chain:,.0f} rec/s "
          f"(torch threads {results.get('torch_threads_in_process')}, load {os.getloadavg()[0]:.1f})", flush=True)
    run_case("multirecord", args.records, {"part-0.csv": payload_all}, BatchStrategy="MultiRecord",
             MaxPayloadInMB=6, DataProcessing=NIGHTLY_DP)
    run_case("multirecord_plain", args.records, {"part-0.csv": features_only}, BatchStrategy="MultiRecord",
             MaxPayloadInMB=6)
    sub = "".join(ln + "\n" for ln in lines[: args.single_subset])
    run_case("singlerecord", args.single_subset, {"part-0.csv": sub}, BatchStrategy="SingleRecord",
             DataProcessing=NIGHTLY_DP)
    quarter = (len(lines) + 3) // 4
    shards = {f"part-{i}.csv": "".join(ln + "\n" for ln in lines[i * quarter:(i + 1) * quarter]) for i in range(4)}
    for ic in (1, 2):
        for mct in (1, 2):
            run_case(f"grid_ic{ic}_mct{mct}", args.records, shards, BatchStrategy="MultiRecord", MaxPayloadInMB=1,
                     MaxConcurrentTransforms=mct, DataProcessing=NIGHTLY_DP,
                     TransformResources={"InstanceType": "ml.m5.xlarge", "InstanceCount": ic})
    if not args.model_data:
        overlap_cases(rt, storage, work, results)
    rt.close()

    c = results["cases"]
    floor = c["floor_predict_fn"]["records_per_s"]
    results["ratios"] = {
        "multirecord_vs_adjacent_floor": c["multirecord"]["vs_adjacent_floor"],
        "multirecord_plain_vs_adjacent_floor": c["multirecord_plain"]["vs_adjacent_floor"],
        "multirecord_vs_floor_predict_fn": c["multirecord"]["records_per_s"] / floor,
        "multirecord_wall_vs_floor_predict_fn": c["multirecord"]["records_per_s_wall"] / floor,
        "multirecord_vs_floor_handlers": c["multirecord"]["records_per_s"] / c["floor_handlers"]["records_per_s"],
        "multirecord_plain_vs_floor_predict_fn": c["multirecord_plain"]["records_per_s"] / floor,
        "singlerecord_vs_multirecord": c["singlerecord"]["records_per_s"] / c["multirecord"]["records_per_s"],
        **{f"{k}_vs_grid_ic1_mct1": c[k]["records_per_s"] / c["grid_ic1_mct1"]["records_per_s"]
           for k in ("grid_ic1_mct2", "grid_ic2_mct1", "grid_ic2_mct2")},
    }
    results["goal_met"] = results["ratios"]["multirecord_vs_adjacent_floor"] >= 0.8
    print("ratios:")
    for k, v in results["ratios"].items():
        print(f"  {k:<42} {v:6.2f}")
    print(f"goal MultiRecord >= 0.8 x floor: {'met' if results['goal_met'] else 'NOT met'}")
    _save(results, args.out)


def overlap_cases(rt, storage, work: Path, results: dict, repeat: int = 3) -> None:
    """Objects overlapping under MaxConcurrentTransforms (issue 10, divergence 2): ProcessingSeconds
    of 4 one-request objects at MCT 1 and 4, as ratios to one such object (minimum of `repeat`)."""
    def processing(key: str, n_objects: int, mct: int) -> float:
        best = None
        for r in range(repeat):
            inp, out = str(work / f"{key}-{r}" / "in"), str(work / f"{key}-{r}" / "out")
            for i in range(n_objects):
                storage.write_text(f"{inp}/{i}.csv", "sleep1\n")
            d = rt.create_transform_job(spec(f"{key}-{r}".replace("_", "-"), inp, out, MaxConcurrentTransforms=mct,
                                             TransformInput={"ContentType": "text/csv", "SplitType": "None",
                                                             "DataSource": {"S3DataSource": {
                                                                 "S3DataType": "S3Prefix", "S3Uri": inp}}}))
            assert d["TransformJobStatus"] == "Completed", d.get("FailureReason")
            t = d["LocalTimings"]["ProcessingSeconds"]
            best = t if best is None else min(best, t)
        return best

    floor = processing("overlap_floor", 1, 1)
    c = results["cases"]
    c["overlap_floor_one_object"] = {"processing_s": floor}
    for mct in (1, 4):
        t = processing(f"overlap_mct{mct}", 4, mct)
        c[f"overlap_mct{mct}"] = {"objects": 4, "processing_s": t, "vs_one_object": t / floor}
        print(f"  overlap_mct{mct:<13} 4 objects x 1 s: {t:.2f} s = {t / floor:.2f} x one object ({floor:.2f} s)",
              flush=True)
    results.setdefault("ratios", {}).update(
        {f"overlap_mct{m}_vs_one_object": c[f"overlap_mct{m}"]["vs_one_object"] for m in (1, 4)})


def _save(results: dict, out: str) -> None:
    os.makedirs(out, exist_ok=True)
    path = Path(out) / f"transform-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    path.write_text(json.dumps(results, indent=2))
    print(f"saved {path}")


if __name__ == "__main__":
    main()
