"""predict_fn throughput at batch sizes 1, 100 and 10,000.

    .venv/bin/python bench/predict.py [--model-dir DIR] [--out bench/results/predict.json]

For each batch size: records/s of predict_fn alone (every horizon 1..MAX_HORIZON and the
distribution's quantities, in FORWARD_BLOCK_ROWS-record blocks), and of the whole request
(input_fn on a CSV body -> predict_fn -> output_fn, 144 values a record). Without --model-dir
an untrained gbm model of the real network's size (1,400 stations) is used: random trees of a
trained model's depth cost what trained ones do, so pass a trained model's directory for the
figures that count.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from velibcast.timeutil import UTC, iso_second
from velibcast.training.package import extract
from velibcast.training.synthetic import untrained_archive
from velibcast.transform_code import inference

BATCHES = (1, 100, 10_000)
N_STATIONS = 1400


def csv_body(n: int, seed: int = 0) -> str:
    rnd = random.Random(seed)
    lines = []
    for _ in range(n):
        cap = rnd.randint(12, 60)
        hist = [rnd.randint(0, cap) for _ in range(24)]
        lines.append(",".join(map(str, hist + [rnd.randint(0, 23), rnd.randint(0, 6), 0, rnd.randint(0, 1), cap,
                                               rnd.randint(0, N_STATIONS), round(48.85 + rnd.random() / 20, 6),
                                               round(2.3 + rnd.random() / 10, 6)])))
    return "\n".join(lines) + "\n"


def timed(fn, min_seconds: float, min_reps: int) -> list[float]:
    fn()  # warm-up: first call allocates
    times: list[float] = []
    t_end = time.perf_counter() + min_seconds
    while len(times) < min_reps or time.perf_counter() < t_end:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model-dir", default=None)
    p.add_argument("--min-seconds", type=float, default=2.0, help="per measurement")
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "predict.json"))
    a = p.parse_args(argv)

    model_dir = a.model_dir or str(extract(untrained_archive(N_STATIONS, seed=0), Path(tempfile.mkdtemp())))
    model = inference.model_fn(model_dir)
    bodies = {n: csv_body(n) for n in BATCHES}
    decoded = {n: inference.input_fn(bodies[n], "text/csv") for n in BATCHES}
    rows = []
    load_start = [round(v, 2) for v in os.getloadavg()]
    for n in BATCHES:
        pred = timed(lambda n=n: inference.predict_fn(decoded[n], model), a.min_seconds, 5)
        full = timed(lambda n=n: inference.output_fn(
            inference.predict_fn(inference.input_fn(bodies[n], "text/csv"), model), "text/csv"),
            a.min_seconds, 5)
        row = {
            "batch": n,
            "predict_fn_median_ms": round(statistics.median(pred) * 1000, 3),
            "predict_fn_records_per_s": round(n / statistics.median(pred)),
            "request_median_ms": round(statistics.median(full) * 1000, 3),
            "request_records_per_s": round(n / statistics.median(full)),
            "reps": len(pred),
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    result = {
        "bench": "predict_fn",
        "when": iso_second(datetime.now(UTC)),
        "model": model.version,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": sys.version.split()[0],
                    # other work on the machine skews every figure: read them with this
                    "load_average_1_5_15_at_end": [round(v, 2) for v in os.getloadavg()]},
        "load_average_1_5_15_at_start": load_start,
        "forward_block_rows": inference.FORWARD_BLOCK_ROWS,
        "notes": "median of repeated calls after one warm-up; request = input_fn(csv) + predict_fn + output_fn(csv)",
        "results": rows,
    }
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"saved {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
