"""bench/states: what the hourly states buy, as ratios against a floor measured in the same run.

Run: .venv/bin/python bench/states.py [--quick] [--reps 5]

Each case runs in its own subprocess (its peak memory, VmHWM, is its own), cases and their
floors alternate `--reps` times, and a ratio is min(case) / min(floor); the spread is printed.

  day-ahead, 28 vs 1 day   the window stage of a day-ahead run (one origin, the last hour of the
                           store, as of the store's end) on a store holding 28 days of captures
                           against the same run on a store holding 1 day before the run's day,
                           both with their states ingested. Goal <= 1.3 x, at 1,500 and 100,000
                           stations; peak memory of the 100,000-station 28-day run < 1 GB.
  ingest vs parse          ingesting one new 100,000-station capture (the store's last, 23:13 of
                           its second day) into states already holding the captures before it,
                           against reading, gunzipping and parsing that capture
                           (parse_snapshot_columns). Goal <= 2 x; ingest peak < 500 MB. The ingest
                           rewrites only the hour objects whose rows the capture changes (here
                           23:00, the hour of its new observations) and the date's ledger.
  ingest, stalled stations the same on a copy of the store where 1 station in 20 stalled at 10:00
                           of the second day (each later capture repeats its record, as the real
                           feed does for a station that stopped reporting). A repeated record
                           leaves the state of every hour it reaches (12:00 .. 23:00) as it is,
                           so the ingest reads and rewrites the same hours as for a fresh feed.
                           Goal <= 2 x, as above.
Synthetic stores (datasets/synthetic.py) are generated once into bench/.work/ (gitignored): two
days generated, and for the 28-day store 26 earlier days of the first day's captures under
earlier names (hard links). The states of every date the run reads are ingested (a no-op once
done).
--quick runs the 1,500-station cases only.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

from bench_results import child, once, save

from velibcast.datasets import ingest as ing
from velibcast.datasets.assemble import assemble_transform_inputs
from velibcast.datasets.quality import QualityTracker
from velibcast.datasets.report import SkipReport, ValidationPolicy
from velibcast.datasets.snapshots import (
    capture_ts_from_key,
    list_snapshots,
    parse_snapshot_columns,
    snapshot_uri,
)
from velibcast.datasets.synthetic import generate_store
from velibcast.datasets.windows import latest_origin
from velibcast.storage import Storage
from velibcast.timeutil import UTC

REPO = Path(__file__).resolve().parents[1]
SYN_START = datetime(2024, 1, 1, tzinfo=UTC)
AS_OF = SYN_START + timedelta(days=2) - timedelta(minutes=1)  # the end of the second day
HISTORY_GOAL, INGEST_GOAL = 1.3, 2.0
STALLED_AT, STALLED_EVERY = SYN_START + timedelta(days=1, hours=10), 20  # from 10:00 of the second day, 1 in 20
DAY_AHEAD_MEMORY_MB, INGEST_MEMORY_MB = 1024, 500


# ---------------------------------------------------------------- cases (child processes)
def case_window(spec: dict) -> dict:
    storage = Storage()
    origin = latest_origin(storage, spec["root"], AS_OF)
    assert origin is not None
    with tempfile.TemporaryDirectory() as out:
        t0, c0 = time.perf_counter(), time.process_time()
        r = assemble_transform_inputs(storage, spec["root"], [origin], out + "/in", index_uri=out + "/index.parquet",
                                      observers=[QualityTracker()], as_of=AS_OF, states_root=spec["root"])
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    s = r.summary
    return {"wall_s": wall, "cpu_s": cpu, "windows": s["windows_emitted"], "snapshots_read": s["snapshots_read"]}


def case_ingest(spec: dict) -> dict:
    """The base store's states, copied, and its captures plus the new one, linked: then one ingest."""
    base, new = Path(spec["base"]), Path(spec["new"])
    with tempfile.TemporaryDirectory(dir=spec["work"]) as tmp:
        shutil.copytree(base / "states", Path(tmp) / "states")
        snaps = Path(tmp) / "velib" / "snapshots"
        for p in (base / "velib" / "snapshots").rglob("*.jsonl.gz"):
            dest = snaps / p.relative_to(base / "velib" / "snapshots")
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.link(p, dest)
        ts = capture_ts_from_key(new.name)
        assert ts is not None
        dest = Path(snapshot_uri(tmp, ts))
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.link(new, dest)
        t0, c0 = time.perf_counter(), time.process_time()
        r = ing.ingest(Storage(), tmp, tmp, SYN_START, SYN_START + timedelta(days=2))
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    assert r.captures_parsed == 1 and not r.rebuilt, r.to_dict()
    return {"wall_s": wall, "cpu_s": cpu, "written": r.written, "hours_written": r.hours_written}


def case_parse(spec: dict) -> dict:
    storage = Storage()
    ts = capture_ts_from_key(Path(spec["new"]).name)
    assert ts is not None
    refs = list_snapshots(storage, spec["full"], ts, ts)
    t0, c0 = time.perf_counter(), time.process_time()
    cols = parse_snapshot_columns(storage.read_bytes(refs[0].uri), refs[0], ValidationPolicy(), SkipReport())
    return {"wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0, "records": len(cols)}


def case_setup(spec: dict) -> dict:
    """Generate the stores once and ingest their states (the cost a deployment pays as captures arrive)."""
    t0 = time.perf_counter()
    storage, work, n = Storage(), Path(spec["work"]), spec["stations"]
    d1 = work / f"s{n}_d1"
    if not (d1 / "velib").exists():
        generate_store(storage, str(d1), n, 2, SYN_START, missed_capture_rate=0)
    refs = list_snapshots(storage, str(d1), SYN_START - timedelta(days=1), SYN_START + timedelta(days=3))
    d28 = work / f"s{n}_d28"
    if not (d28 / "velib").exists():
        for ref in refs:
            src = Path(ref.uri)
            _link(src, Path(snapshot_uri(str(d28), ref.capture_ts)))
            if ref.capture_ts < SYN_START + timedelta(days=1):  # the first day, 26 days earlier too
                for k in range(1, 27):
                    _link(src, Path(snapshot_uri(str(d28), ref.capture_ts - timedelta(days=k))))
    base = work / f"s{n}_ingest_base"  # every capture but the last, states ingested
    for ref in refs[:-1]:
        _link(Path(ref.uri), Path(snapshot_uri(str(base), ref.capture_ts)))
    stalled = work / f"s{n}_stalled"  # d1 with some stations stalled, all its captures
    if not (stalled / "velib").exists():
        _stall(refs, stalled)
    stalled_base = work / f"s{n}_stalled_base"  # every capture of it but the last, states ingested
    for ref in refs[:-1]:
        _link(Path(snapshot_uri(str(stalled), ref.capture_ts)), Path(snapshot_uri(str(stalled_base), ref.capture_ts)))
    for store in (d1, d28, base, stalled_base):
        ing.ingest(storage, str(store), str(store), SYN_START, SYN_START + timedelta(days=2))
    return {"wall_s": time.perf_counter() - t0, "d1": str(d1), "d28": str(d28), "base": str(base),
            "new": refs[-1].uri, "stalled": str(stalled), "stalled_base": str(stalled_base),
            "stalled_new": snapshot_uri(str(stalled), refs[-1].capture_ts)}


def _stall(refs: list, dest: Path) -> None:
    """The captures of `refs` under `dest`, where every STALLED_EVERY-th station's feed stalls at
    STALLED_AT: each later capture repeats its record of the first capture from then on (same
    duedate, same counts), as the real feed does for a station that stopped reporting."""
    held: dict[str, bytes] | None = None
    for ref in refs:
        out = Path(snapshot_uri(str(dest), ref.capture_ts))
        if ref.capture_ts < STALLED_AT:
            _link(Path(ref.uri), out)
            continue
        lines = [line for line in gzip.decompress(Path(ref.uri).read_bytes()).split(b"\n") if line]
        codes = [json.loads(line)["stationcode"] for line in lines]
        if held is None:
            held = {c: line for c, line in zip(codes, lines) if int(c) % STALLED_EVERY == 0}
        lines = [held.get(c, line) for c, line in zip(codes, lines)]
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(gzip.compress(b"\n".join(lines) + b"\n", mtime=0))


def _link(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    if not dest.exists():
        os.link(src, dest)


CASES = {"window": case_window, "ingest": case_ingest, "parse": case_parse, "setup": case_setup}


def interleaved(pairs: dict[str, tuple[str, dict]], reps: int) -> dict:
    """Each named (case, spec) run `reps` times, alternating; each keeps its minimum and its spread."""
    runs: dict[str, list[dict]] = {name: [] for name in pairs}
    for _ in range(reps):
        for name, (case, spec) in pairs.items():
            runs[name].append(once(__file__, case, spec))
    return {name: {**min(rs, key=lambda r: r["wall_s"]), "walls_s": [r["wall_s"] for r in rs],
                   "peak_rss_mb_max": max(r["peak_rss_mb"] for r in rs)} for name, rs in runs.items()}


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def line(name: str, r: dict) -> str:
    w = r["walls_s"]
    return f"{name} {r['wall_s']:.3f} s (spread {min(w):.3f}..{max(w):.3f} s, cpu {r['cpu_s']:.3f} s, peak {r['peak_rss_mb_max']:.0f} MB)"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--child", nargs=2)
    ap.add_argument("--quick", action="store_true", help="the 1,500-station cases only")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--work", default=str(REPO / "bench" / ".work"))
    a = ap.parse_args()
    if a.child:
        return child(CASES, a.child[0], json.loads(a.child[1]))
    Path(a.work).mkdir(parents=True, exist_ok=True)
    print(f"bench/states: {os.cpu_count()} cpus, load average {os.getloadavg()[0]:.1f} "
          f"(min of {a.reps} interleaved repetitions)")
    results: dict = {"cpus": os.cpu_count(), "load_average": os.getloadavg()[0], "reps": a.reps}
    for n in ([1500] if a.quick else [1500, 100_000]):
        stores = once(__file__, "setup", {"work": a.work, "stations": n})
        r = interleaved({"28 days": ("window", {"root": stores["d28"]}),
                         "1 day": ("window", {"root": stores["d1"]})}, a.reps)
        ratio = r["28 days"]["wall_s"] / r["1 day"]["wall_s"]
        results[f"day_ahead_s{n}"] = {**r, "ratio": ratio}
        print(f"day-ahead window stage, {n:,} stations, {r['28 days']['windows']:,} windows "
              f"({r['28 days']['snapshots_read']} raw captures read):")
        print(f"  {line('28 days of history', r['28 days'])}")
        print(f"  {line('1 day of history', r['1 day'])}")
        print(f"  ratio {ratio:.2f}; goal <= {HISTORY_GOAL}: {verdict(ratio <= HISTORY_GOAL)}")
        if n == 100_000:
            peak = r["28 days"]["peak_rss_mb_max"]
            print(f"  peak memory, 28 days: {peak:.0f} MB; goal < {DAY_AHEAD_MEMORY_MB} MB: "
                  f"{verdict(peak < DAY_AHEAD_MEMORY_MB)}")
        for key, label, prefix, full in (("ingest", "", "", "d1"),
                                         ("ingest_stalled", f", 1 station in {STALLED_EVERY} stalled since 10:00",
                                          "stalled_", "stalled")):
            spec = {"work": a.work, "base": stores[f"{prefix}base"], "new": stores[f"{prefix}new"], "full": stores[full]}
            r = interleaved({"ingest": ("ingest", spec), "parse": ("parse", spec)}, a.reps)
            ratio = r["ingest"]["wall_s"] / r["parse"]["wall_s"]
            results[f"{key}_s{n}"] = {**r, "ratio": ratio}
            print(f"ingest of one {n:,}-station capture{label} (dates written: {', '.join(r['ingest']['written'])}; "
                  f"hour objects written: {', '.join(r['ingest']['hours_written']) or 'none'}):")
            print(f"  {line('ingest', r['ingest'])}")
            print(f"  {line('read + gunzip + parse', r['parse'])}")
            print(f"  ratio {ratio:.2f}; goal <= {INGEST_GOAL}: {verdict(ratio <= INGEST_GOAL)}")
            if n == 100_000:
                peak = r["ingest"]["peak_rss_mb_max"]
                print(f"  ingest peak memory {peak:.0f} MB; goal < {INGEST_MEMORY_MB} MB: "
                      f"{verdict(peak < INGEST_MEMORY_MB)}")
    save("states", results)


if __name__ == "__main__":
    main()
