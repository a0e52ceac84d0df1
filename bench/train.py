"""Training cost of the default family on the bundled real days: time and peak memory vs days.

    .venv/bin/python bench/train.py [--days 5 10 15] [--family gbm] [--repeats 1] [--out bench/results/train.json]

Each span (the first N Europe/Paris days of sample_data, N in --days) is trained in a fresh
process (`velibcast train --no-backtest` on a temporary store), so the peak RSS it reports
(resource.getrusage of the child) is that span's alone. Prints CPU seconds, wall seconds,
samples and peak RSS per span, and each span's ratio to the shortest span measured in the
same run (the floor, the shortest span): the growth with days, independent of the machine's speed. The
absolute figures are the budget check (the training budget: <= 30 s for the four bundled days).
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
from datetime import datetime, timedelta
from pathlib import Path

from velibcast.timeutil import UTC, iso_minute

REPO = Path(__file__).resolve().parents[1]
FIRST = datetime(2022, 5, 11, 22, tzinfo=UTC)  # 2022-05-12 00:00 in Paris (summer time), the first bundled day


# --end is excluded ([start, end) like every range): each span ends at midnight in Paris.
DAY_ENDS = {n: iso_minute(FIRST + timedelta(days=n)) for n in range(1, 16)}


def run_one(days: int, family: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "cfg.yaml"
        cfg.write_text(f"store:\n  root: {tmp}/store\nsnapshots:\n  root: {REPO / 'sample_data'}\n")
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.monotonic()
        out = subprocess.run([sys.executable, "-m", "velibcast.flows.cli", "train", "--config", str(cfg),
                              "--start", iso_minute(FIRST), "--end", DAY_ENDS[days], "--family", family, "--no-backtest"],
                             capture_output=True, text=True, env=dict(os.environ, PREFECT_SERVER_ANALYTICS_ENABLED="false"))
        wall = time.monotonic() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if out.returncode:
            raise SystemExit(out.stderr[-3000:])
        meta = next(Path(tmp, "store", "models").glob("*/metrics.json"))
        metrics = json.loads(meta.read_text())
        return {"days": days, "samples": metrics["fit"].get("samples"),
                "train_cpu_s": metrics["train_cpu_seconds"], "train_wall_s": metrics["train_wall_seconds"],
                "process_wall_s": round(wall, 1),
                "process_cpu_s": round((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), 1),
                "peak_rss_mb": round(after.ru_maxrss / 1024, 1)}


def main() -> None:
    ap = argparse.ArgumentParser()
    # The first day yields no sample (24 h of history first, and the store starts at 10:22Z).
    ap.add_argument("--days", type=int, nargs="+", default=[5, 10, 15])
    ap.add_argument("--family", default="gbm")
    ap.add_argument("--repeats", type=int, default=1, help="minimum over this many runs per span")
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "train.json"))
    args = ap.parse_args()
    rows = []
    for d in args.days:
        runs = [run_one(d, args.family) for _ in range(args.repeats)]
        best = min(runs, key=lambda r: r["train_cpu_s"])
        best["peak_rss_mb"] = max(r["peak_rss_mb"] for r in runs)
        rows.append(best)
        print(json.dumps(best))
    floor = rows[0]
    for r in rows:
        r["cpu_ratio_to_first"] = round(r["train_cpu_s"] / max(floor["train_cpu_s"], 0.1), 2)
        r["samples_ratio_to_first"] = round((r["samples"] or 0) / max(floor["samples"] or 1, 1), 2)
        print(f"{r['days']} day(s): {r['samples']} samples, train {r['train_cpu_s']} CPU s / {r['train_wall_s']} s wall "
              f"(x{r['cpu_ratio_to_first']} the first span for x{r['samples_ratio_to_first']} samples), "
              f"whole process {r['process_cpu_s']} CPU s, peak RSS {r['peak_rss_mb']} MB")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
