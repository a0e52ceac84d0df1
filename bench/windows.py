"""bench/windows: window assembly vs the I/O floor, on real and synthetic snapshot stores.

Run: .venv/bin/python bench/windows.py [--quick]
Every case runs in its own subprocess, so peak memory (ru_maxrss) is that case's alone.
(a) one nightly run on the real sample (sample_data, 2022-05-25 Paris day);
(b) the floor on the same snapshot objects: read, gunzip and parse every line with the fastest
    reader available (orjson, else json), nothing else; ratio = (a) / (b), goal <= 1.5;
(c) synthetic: 30 days x 1,500 stations (a nightly run on a 3-day and on the 30-day store,
    memory should not follow the store; all 29 days of origins, time should follow the data)
    and 100,000 stations x 2 days (a nightly run).
Results are printed and saved to bench/results/windows-<UTC time>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
UTC = timezone.utc
SYN_START = datetime(2024, 1, 1, tzinfo=UTC)


def _origins(spec: dict):
    from velibcast.datasets.windows import origins_for_range, origins_for_run_date

    if "run_date" in spec:
        return origins_for_run_date(date.fromisoformat(spec["run_date"]))
    return origins_for_range(datetime.fromisoformat(spec["start"]), datetime.fromisoformat(spec["end"]))


def case_assembly(spec: dict) -> dict:
    """What the nightly flow runs: snapshots -> windows -> CSV shards + record index (local files)."""
    from velibcast.datasets.assemble import assemble_transform_inputs
    from velibcast.datasets.quality import QualityTracker
    from velibcast.storage import Storage

    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        r = assemble_transform_inputs(Storage(), spec["root"], _origins(spec), out + "/in", fmt=spec.get("fmt", "csv"),
                                      index_uri=out + "/index.parquet", observers=[QualityTracker()])
        wall = time.perf_counter() - t0
        size = sum(os.path.getsize(p) for p in r["shards"])
    return {"wall_s": wall, "windows": r["summary"]["windows_emitted"], "shards": len(r["shards"]), "bytes": size,
            **r["summary"], "skips": r["report"]["counts"]}


def case_floor(spec: dict) -> dict:
    """Read + gunzip + parse each line of the same snapshot objects the run reads."""
    import gzip

    from velibcast.datasets.jsonio import loads
    from velibcast.datasets.snapshots import list_snapshots
    from velibcast.datasets.windows import history_hours, snapshot_span
    from velibcast.storage import Storage

    origins = _origins(spec)
    stale = timedelta(hours=3)
    lo, _ = snapshot_span(history_hours(origins[:1]), stale)
    _, hi = snapshot_span(origins[-1:], stale)
    storage = Storage()
    refs = list_snapshots(storage, spec["root"], lo, hi)
    t0 = time.perf_counter()
    n = 0
    for ref in refs:
        for line in gzip.decompress(storage.read_bytes(ref.uri)).split(b"\n"):
            if line:
                loads(line)
                n += 1
    return {"wall_s": time.perf_counter() - t0, "snapshots": len(refs), "records": n,
            "reader": getattr(loads, "__module__", None) or "orjson"}


def case_generate(spec: dict) -> dict:
    from velibcast.datasets.synthetic import generate_store
    from velibcast.storage import Storage

    t0 = time.perf_counter()
    c = generate_store(Storage(), spec["root"], spec["stations"], spec["days"], SYN_START)
    return {"wall_s": time.perf_counter() - t0, **c}


CASES = {"assembly": case_assembly, "floor": case_floor,
         "generate": case_generate}


def child(case: str, spec: dict) -> None:
    out = CASES[case](spec)
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(out))


def run(case: str, spec: dict, repeat: int = 1) -> dict:
    """Best wall time of `repeat` fresh subprocesses (the machine is shared)."""
    best = None
    for _ in range(repeat):
        p = subprocess.run([sys.executable, __file__, "--child", case, json.dumps(spec)],
                           capture_output=True, text=True, cwd=REPO)
        if p.returncode:
            raise SystemExit(f"bench case {case} {spec} failed:\n{p.stderr}")
        r = json.loads(p.stdout.strip().splitlines()[-1])
        if best is None or r["wall_s"] < best["wall_s"]:
            best = r
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--child", nargs=2)
    ap.add_argument("--quick", action="store_true", help="skip the 100,000-station case")
    ap.add_argument("--work", default=None, help="where synthetic stores go (default: a temp dir)")
    a = ap.parse_args()
    if a.child:
        return child(a.child[0], json.loads(a.child[1]))

    results: dict = {"when": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), "cpus": os.cpu_count()}
    real = {"root": str(REPO / "sample_data"), "run_date": "2022-05-25"}
    results["a_real_nightly"] = run("assembly", real, repeat=3)
    results["b_floor"] = run("floor", real, repeat=3)
    results["ratio_assembly_to_floor"] = results["a_real_nightly"]["wall_s"] / results["b_floor"]["wall_s"]
    print(f"(a) real nightly: {results['a_real_nightly']['wall_s']:.3f} s, {results['a_real_nightly']['windows']} windows, "
          f"peak {results['a_real_nightly']['peak_rss_mb']:.0f} MB")
    print(f"(b) floor:        {results['b_floor']['wall_s']:.3f} s ({results['b_floor']['records']} records)")
    print(f"    ratio (a)/(b) = {results['ratio_assembly_to_floor']:.2f}  (goal <= 1.5)")

    work = Path(a.work or tempfile.mkdtemp(prefix="velib-bench-"))
    syn = {}
    for name, stations, days in [("s1500_d3", 1500, 3), ("s1500_d30", 1500, 30)] + ([] if a.quick else [("s100k_d2", 100_000, 2)]):
        root = str(work / name)
        if not (work / name / "velib").exists():
            syn[f"generate_{name}"] = run("generate", {"root": root, "stations": stations, "days": days})
        last_day = (SYN_START + timedelta(days=days - 1)).date()
        nightly = {"root": root, "start": datetime.combine(last_day, datetime.min.time(), UTC).isoformat(),
                   "end": datetime.combine(last_day + timedelta(days=1), datetime.min.time(), UTC).isoformat()}
        syn[f"{name}_nightly"] = run("assembly", nightly)
        syn[f"{name}_nightly_floor"] = run("floor", nightly)
        print(f"(c) {name} nightly: {syn[f'{name}_nightly']['wall_s']:.2f} s, {syn[f'{name}_nightly']['windows']} windows, "
              f"peak {syn[f'{name}_nightly']['peak_rss_mb']:.0f} MB; floor {syn[f'{name}_nightly_floor']['wall_s']:.2f} s")
    for name, days in [("s1500_d3", 3), ("s1500_d30", 30)]:
        full = {"root": str(work / name), "start": (SYN_START + timedelta(days=1)).isoformat(),
                "end": (SYN_START + timedelta(days=days)).isoformat()}
        syn[f"{name}_all_origins"] = run("assembly", full)
        r = syn[f"{name}_all_origins"]
        print(f"(c) {name} all {r['origins']} origins: {r['wall_s']:.2f} s, {r['windows']} windows, "
              f"{r['wall_s'] / max(1, r['records_read']) * 1e6:.2f} us/record, peak {r['peak_rss_mb']:.0f} MB")
    results["c_synthetic"] = syn
    out = REPO / "bench" / "results" / f"windows-{results['when'].replace(':', '-')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"saved {out}")


if __name__ == "__main__":
    main()
