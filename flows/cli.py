"""`velibcast` command line: ad-hoc runs, the demo, and each stage's own commands.

Stage packages add their subcommands through `register(subparsers)`, so this file only
knows the run-level commands.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from datetime import date
from pathlib import Path

from velibcast.cli_types import utc_time
from velibcast.errors import VelibcastError


def _print_result(res: dict) -> None:
    c = res["counts"]
    print(f"forecasts: {res['forecast_parquet']}")
    print(f"manifest:  {res['manifest_uri']}")
    print(f"stations seen {c['stations_seen']}, windows emitted {c['windows_emitted']}, "
          f"skipped {c['windows_skipped']} {json.dumps(c['windows_skipped_by_reason'])}, "
          f"records sent {c['records_sent']}, predictions written {c['predictions_written']}, "
          f"forecast rows {c['forecast_rows']}")
    if res.get("report_png"):
        print(f"report:    {res['report_png']}")


def cmd_run(args) -> int:
    from velibcast.flows.nightly import nightly

    if (args.start is None) != (args.end is None):
        raise SystemExit("give both --start and --end, or neither")
    res = nightly(run_date=args.run_date, config=args.config, start=args.start, end=args.end, force=args.force)
    _print_result(res)
    return 0


def cmd_demo(args) -> int:
    """Seed ./data from the bundled real sample, train a model if none exists, run one night."""
    from velibcast.flows.nightly import nightly

    from velibcast.config import REPO_ROOT, load_config

    cfg = load_config(args.config)
    root = Path(cfg.root)
    sample = REPO_ROOT / "sample_data"
    snaps = root / "velib" / "snapshots"
    if not snaps.exists():
        print(f"seeding {snaps} from {sample}")
        shutil.copytree(sample / "velib", root / "velib", dirs_exist_ok=True)
    if not any((root / "models").glob("*/model.tar.gz")):
        from velibcast.training.train import train_model

        m = cfg["model"]
        print(f"training a model on {m['train_start']} .. {m['train_end']} (bounded CPU time)")
        info = train_model(cfg.storage(), cfg.snapshots_root, utc_time(m["train_start"]), utc_time(m["train_end"]),
                           cfg.root, seed=None, max_seconds=None)
        print(f"model {info['version']}: {info['model_uri']}")
    res = nightly(config=args.config, force=args.force)
    _print_result(res)
    return 0


def cmd_backfill(args) -> int:
    from velibcast.flows.backfill import backfill

    res = backfill(start_date=args.start_date, end_date=args.end_date, config=args.config,
                   force=args.force, max_concurrency=args.max_concurrency)
    for r in res["dates"]:
        print(f"{r['run_date']}: {r['status']}" + (f" ({r['error']})" if r.get("error") else ""))
    print(json.dumps(res["summary"]))
    return 1 if res["summary"]["failed"] else 0


def cmd_score(args) -> int:
    from velibcast.flows.score import score_run

    from velibcast.config import load_config

    cfg = load_config(args.config)
    res = score_run(cfg.storage(), cfg, args.run_date)
    print(res["message"])
    for r in res.get("by_horizon", []):
        print(f"  h{r['horizon_h']}: MAE model {r['mae_model']:.3f}, persistence {r['mae_persistence']:.3f} "
              f"({r['scored_rows']} rows)")
    if res.get("accuracy_uri"):
        print(f"accuracy: {res['accuracy_uri']}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="velibcast", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="run the nightly flow once (ad hoc)")
    r.add_argument("--config", default="configs/local.yaml")
    r.add_argument("--run-date", type=date.fromisoformat, default=None,
                   help="Europe/Paris local day to forecast (default: config, else yesterday)")
    r.add_argument("--start", type=utc_time, default=None, help="first origin (UTC ISO time), with --end")
    r.add_argument("--end", type=utc_time, default=None, help="end of the origin range, exclusive")
    r.add_argument("--force", action="store_true", help="recompute stages even if a previous attempt completed them")
    r.set_defaults(func=cmd_run)

    d = sub.add_parser("demo", help="seed ./data from the bundled sample, train if needed, run one night")
    d.add_argument("--config", default="configs/local.yaml")
    d.add_argument("--force", action="store_true")
    d.set_defaults(func=cmd_demo)

    b = sub.add_parser("backfill", help="one nightly run per date in a range, skipping complete dates")
    b.add_argument("--config", default="configs/local.yaml")
    b.add_argument("--start-date", type=date.fromisoformat, required=True)
    b.add_argument("--end-date", type=date.fromisoformat, required=True, help="inclusive")
    b.add_argument("--force", action="store_true", help="rerun dates that are already complete")
    b.add_argument("--max-concurrency", type=int, default=2)
    b.set_defaults(func=cmd_backfill)

    sc = sub.add_parser("score", help="MAE per horizon of a published night, model vs persistence")
    sc.add_argument("--config", default="configs/local.yaml")
    sc.add_argument("--run-date", type=date.fromisoformat, required=True)
    sc.set_defaults(func=cmd_score)

    from velibcast.batch_transform import cli as bt_cli
    from velibcast.datasets import cli as ds_cli
    from velibcast.training import cli as tr_cli

    for module in (ds_cli, tr_cli, bt_cli):
        module.register(sub)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args) or 0
    except VelibcastError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
