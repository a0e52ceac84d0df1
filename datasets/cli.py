"""`velibcast snapshots import` and `velibcast windows`; flows/cli.py calls register()."""

from __future__ import annotations

import json
from datetime import date, timedelta

from velibcast import constants as C
from velibcast.cli_types import utc_time
from velibcast.datasets.report import ValidationPolicy
from velibcast.storage import Storage
from velibcast.timeutil import iso_minute


def register(subparsers) -> None:
    snap = subparsers.add_parser("snapshots", help="snapshot store commands")
    snap_sub = snap.add_subparsers(dest="snapshots_command", required=True)
    imp = snap_sub.add_parser("import", help="convert a real source format into the snapshot store")
    imp.add_argument("--format", required=True, choices=sorted(C.SNAPSHOT_IMPORT_FORMATS),
                     help="source format (see docs/datasets.md)")
    imp.add_argument("--src", required=True, help="source file, or folder for csv-series")
    imp.add_argument("--station-info", help="GBFS station_information.json (csv-series, gbfs)")
    imp.add_argument("--capture-ts", type=utc_time, help="capture time when the source does not carry one")
    imp.add_argument("--dest", required=True, help="store root; snapshots go under velib/snapshots/")
    imp.add_argument("--layout", choices=["partitioned", "flat"], default="partitioned")
    _policy_args(imp)
    imp.set_defaults(func=cmd_import)

    win = subparsers.add_parser("windows", help="windows of a range -> transform input shards + skip report")
    win.add_argument("--snapshots", required=True, help="store root holding velib/snapshots/")
    rng = win.add_mutually_exclusive_group(required=True)
    rng.add_argument("--start", type=utc_time, help="first origin (UTC), inclusive; with --end")
    rng.add_argument("--run-date", type=date.fromisoformat, help="the hours of one Europe/Paris day")
    rng.add_argument("--as-of", type=utc_time,
                     help="the one origin of a forecast issued then (the latest whole hour with data), "
                          "reading no capture taken after it")
    win.add_argument("--end", type=utc_time, help="end of the origins (UTC), excluded: [start, end)")
    win.add_argument("--format", choices=["csv", "jsonl"], default="csv")
    win.add_argument("--out", required=True, help="prefix for the shards")
    win.add_argument("--station-mapping", help="the model's station_mappings.json (default: all unknown)")
    win.add_argument("--max-staleness-hours", type=float, default=C.MAX_STALENESS_HOURS)
    win.add_argument("--max-shard-bytes", type=int, default=C.TRANSFORM_SHARD_MAX_BYTES)
    win.add_argument("--shards", type=int, default=C.TRANSFORM_SHARD_COUNT,
                     help="at least this many shards: instance_count x MaxConcurrentTransforms")
    win.add_argument("--manifest-file", help="also write a SageMaker ManifestFile listing the shards here")
    win.add_argument("--report", help="skip report URI (default: beside --out)")
    _policy_args(win)
    win.set_defaults(func=cmd_windows)


def _policy_args(p) -> None:
    p.add_argument("--on-bad-record", choices=["skip", "fail"], default="skip")
    p.add_argument("--on-bad-object", choices=["skip", "fail"], default="skip")


def _policy(args) -> ValidationPolicy:
    return ValidationPolicy(on_bad_record=args.on_bad_record, on_bad_object=args.on_bad_object)


def cmd_import(args) -> int:
    from velibcast.datasets import importers  # lazy, per command: pandas and pyarrow (~0.6 s) stay out of --help

    counts = importers.import_source(Storage(), args.format, args.src, args.dest, station_info_uri=args.station_info,
                                     capture_ts=args.capture_ts, layout=args.layout, policy=_policy(args))
    print(json.dumps(counts, indent=2))
    return 0


def cmd_windows(args) -> int:
    # lazy, per command: the window path (pyarrow, ~0.5 s) stays out of --help
    from velibcast.datasets.assemble import (
        assemble_transform_inputs,
        load_station_index,
    )
    from velibcast.datasets.quality import QualityTracker
    from velibcast.datasets.windows import latest_origin, origins_for_range, origins_for_run_date

    storage = Storage()
    max_staleness = timedelta(hours=args.max_staleness_hours)
    if args.run_date:
        origins = origins_for_run_date(args.run_date)
    elif args.as_of:
        origin = latest_origin(storage, args.snapshots, args.as_of, max_staleness)
        if origin is None:
            raise SystemExit(f"windows: no snapshot under {args.snapshots} captured at or before {iso_minute(args.as_of)} "
                             f"within {args.max_staleness_hours:g} h before a whole hour; check --as-of and --snapshots")
        origins = [origin]
    else:
        if args.end is None:
            raise SystemExit("windows: --start needs --end")
        origins = origins_for_range(args.start, args.end)
    result = assemble_transform_inputs(
        storage, args.snapshots, origins, args.out, fmt=args.format,
        station_index=load_station_index(storage, args.station_mapping),
        max_staleness=max_staleness, policy=_policy(args),
        max_shard_bytes=args.max_shard_bytes, shard_count=args.shards,
        manifest_uri=args.manifest_file, report_uri=args.report, observers=[QualityTracker()], as_of=args.as_of,
    )
    s = result.summary
    print(f"{s['windows_emitted']} windows for {s['origins']} origins from {s['snapshots_read']} snapshots "
          f"({s['stations_seen']} stations) -> {len(result.shards)} shard(s) under {args.out}")
    if s["open_coverage"] is not None:
        print(f"{s['open_coverage']:.1%} of {s['open_station_origins']} open station-origins have a window; "
              f"{s['windows_filled']} windows with {s['hours_filled']} hours carried from a neighbouring hour")
    print(f"skips by reason: {json.dumps(result.report['counts'])}")
    print(f"report: {result.report_uri}")
    return 0
