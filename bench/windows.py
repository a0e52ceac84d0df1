"""bench/windows: the one window path (datasets.assemble) against the read + gunzip + parse floor.

Run: .venv/bin/python bench/windows.py [--quick] [--reps 5]

Each case runs in its own subprocess (its peak memory, VmHWM, is that case's alone), and the
case and its floor alternate `--reps` times (case, floor, case, floor, ...); a ratio is
min(case) / min(floor), and the spread (min..max of each) is printed beside it, because this
machine is shared and a single sub-second timing says little.

  real nightly       what the nightly flow runs on the bundled real sample (2022-05-25, Paris
                     day): snapshots -> windows -> CSV shards + record index, written to disk.
                     Goal: <= 1.5 x the floor.
  floor              the same snapshot objects read, gunzipped and every line parsed with
                     orjson.loads, nothing else (single thread).
  100k x 2 days      synthetic, 100,000 stations, a nightly of the second day. Goal: <= 2 x the
                     floor, peak memory < 500 MB. (--quick skips it.)
Synthetic stores are generated once into bench/.work/ (gitignored) and reused.
Results are printed and saved to bench/results/windows-<UTC time>.json.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path

from bench_results import child, once, save

from velibcast.datasets.assemble import assemble_transform_inputs
from velibcast.datasets.jsonio import loads
from velibcast.datasets.quality import QualityTracker
from velibcast.datasets.snapshots import list_snapshots
from velibcast.datasets.synthetic import generate_store
from velibcast.datasets.windows import history_hours, origins_for_range, origins_for_run_date, snapshot_span
from velibcast.storage import Storage
from velibcast.timeutil import UTC

REPO = Path(__file__).resolve().parents[1]
SYN_START = datetime(2024, 1, 1, tzinfo=UTC)
REAL_GOAL, BIG_GOAL, BIG_MEMORY_MB = 1.5, 2.0, 500


def _origins(spec: dict):
    if "run_date" in spec:
        return origins_for_run_date(date.fromisoformat(spec["run_date"]))
    return origins_for_range(datetime.fromisoformat(spec["start"]), datetime.fromisoformat(spec["end"]))


def case_assembly(spec: dict) -> dict:
    """What the nightly flow runs: snapshots -> windows -> CSV shards + record index (local files)."""

    with tempfile.TemporaryDirectory() as out:
        t0, c0 = time.perf_counter(), time.process_time()
        r = assemble_transform_inputs(Storage(), spec["root"], _origins(spec), out + "/in", fmt=spec.get("fmt", "csv"),
                                      index_uri=out + "/index.parquet", observers=[QualityTracker()])
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        size = sum(os.path.getsize(p) for p in r.shards)
    return {"wall_s": wall, "cpu_s": cpu, "windows": r.summary["windows_emitted"], "shards": len(r.shards),
            "bytes": size, **r.summary, "skips": r.report["counts"]}


def case_floor(spec: dict) -> dict:
    """Read + gunzip + parse each line of the same snapshot objects the run reads."""


    origins = _origins(spec)
    stale = timedelta(hours=3)
    lo, _ = snapshot_span(history_hours(origins[:1]), stale)
    _, hi = snapshot_span(origins[-1:], stale)
    storage = Storage()
    refs = list_snapshots(storage, spec["root"], lo, hi)
    t0, c0 = time.perf_counter(), time.process_time()
    n = 0
    for ref in refs:
        for line in gzip.decompress(storage.read_bytes(ref.uri)).split(b"\n"):
            if line:
                loads(line)
                n += 1
    return {"wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0, "snapshots": len(refs),
            "records": n}


def case_generate(spec: dict) -> dict:
    t0 = time.perf_counter()
    c = generate_store(Storage(), spec["root"], spec["stations"], spec["days"], SYN_START)
    return {"wall_s": time.perf_counter() - t0, **c}


CASES = {"assembly": case_assembly, "floor": case_floor, "generate": case_generate}


def interleaved(spec: dict, reps: int) -> dict:
    """Case and floor alternated `reps` times; each keeps its minimum and its spread."""
    runs: dict[str, list[dict]] = {"assembly": [], "floor": []}
    for _ in range(reps):
        for case in runs:
            runs[case].append(once(__file__, case, spec))
    out = {}
    for case, rs in runs.items():
        walls = [r["wall_s"] for r in rs]
        best = min(rs, key=lambda r: r["wall_s"])
        out[case] = {**best, "walls_s": walls, "peak_rss_mb_max": max(r["peak_rss_mb"] for r in rs)}
    out["ratio"] = out["assembly"]["wall_s"] / out["floor"]["wall_s"]
    out["ratio_cpu"] = out["assembly"]["cpu_s"] / out["floor"]["cpu_s"]
    return out


def spread(walls: list[float]) -> str:
    return f"{min(walls):.3f}..{max(walls):.3f} s"


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def report(name: str, r: dict, goal: float, memory_goal_mb: float | None = None) -> None:
    a, f = r["assembly"], r["floor"]
    n_rec, n_st = max(1, a["records_read"]), max(1, a["stations_seen"])
    print(f"{name}: {a['windows']:,} windows from {a['records_read']:,} records ({a['stations_seen']:,} stations, "
          f"{a['snapshots_read']} snapshots), {a['shards']} shard(s), {a['bytes'] / 1e6:.1f} MB CSV")
    print(f"  assembly {a['wall_s']:.3f} s (spread {spread(a['walls_s'])}, cpu {a['cpu_s']:.3f} s), "
          f"floor {f['wall_s']:.3f} s (spread {spread(f['walls_s'])}, cpu {f['cpu_s']:.3f} s)")
    print(f"  ratio {r['ratio']:.2f} (cpu-time ratio {r['ratio_cpu']:.2f}); goal <= {goal}: {verdict(r['ratio'] <= goal)}")
    print(f"  per record {a['wall_s'] / n_rec * 1e6:.2f} us, per station {a['wall_s'] / n_st * 1e3:.3f} ms; "
          f"peak memory {a['peak_rss_mb_max']:.0f} MB = {a['peak_rss_mb_max'] * 1024 / n_st:.1f} KB per station, "
          f"{a['peak_rss_mb_max'] * 2**20 / n_rec:.0f} B per record read (floor process {f['peak_rss_mb_max']:.0f} MB)")
    if memory_goal_mb is not None:
        print(f"  peak memory goal < {memory_goal_mb} MB: {verdict(a['peak_rss_mb_max'] < memory_goal_mb)}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--child", nargs=2)
    ap.add_argument("--quick", action="store_true", help="skip the 100,000-station case")
    ap.add_argument("--reps", type=int, default=5, help="interleaved repetitions of each case and its floor")
    ap.add_argument("--work", default=str(REPO / "bench" / ".work"), help="where synthetic stores are kept")
    a = ap.parse_args()
    if a.child:
        return child(CASES, a.child[0], json.loads(a.child[1]))

    print(f"bench/windows: {os.cpu_count()} cpus, load average {os.getloadavg()[0]:.1f} "
          "(the machine is shared: figures are noisy, hence min of interleaved repetitions)")
    results: dict = {"cpus": os.cpu_count(),
                     "load_average": os.getloadavg()[0], "reps": a.reps}
    real = {"root": str(REPO / "sample_data"), "run_date": "2022-05-25"}
    results["real_nightly"] = interleaved(real, a.reps)
    report("real nightly (sample_data, 2022-05-25)", results["real_nightly"], REAL_GOAL)

    if not a.quick:
        root = Path(a.work) / "s100k_d2"
        if not (root / "velib").exists():
            print("generating the 100,000-station x 2-day store once (a few minutes) ...")
            results["generate_s100k_d2"] = once(__file__, "generate", {"root": str(root), "stations": 100_000, "days": 2})
        day2 = SYN_START + timedelta(days=1)
        big = {"root": str(root), "start": day2.isoformat(), "end": (day2 + timedelta(days=1)).isoformat()}
        results["s100k_d2_nightly"] = interleaved(big, a.reps)
        report("100,000 stations x 2 days, nightly of day 2", results["s100k_d2_nightly"], BIG_GOAL, BIG_MEMORY_MB)

    save("windows", results)


if __name__ == "__main__":
    main()
