"""`velibcast train | evaluate | models`: train a family, backtest, and manage the champion model."""

from __future__ import annotations

import json
import sys
from datetime import datetime, timedelta
from pathlib import Path

from velibcast import constants as C
from velibcast.cli_types import RANGE_CONVENTION, check_range, iso_date, utc_time
from velibcast.config import check_store_exists, load_config
from velibcast.datasets.report import SkipReport
from velibcast.errors import ConfigError
from velibcast.flows.prefect_logs import console_without_tracebacks
from velibcast.timeutil import UTC, iso_minute


def register(subparsers) -> None:
    p = subparsers.add_parser("train", help="train a model family on snapshots, backtest it, package it "
                                            "(runs the Prefect `train` flow)")
    p.add_argument("--config", default="configs/local.yaml",
                   help="run config: store root, snapshots root and model.train_start/train_end defaults")
    p.add_argument("--snapshots", default=None, help="root holding velib/snapshots/ (default: from the config)")
    p.add_argument("--start", type=utc_time, default=None, help="first hour of training data, UTC (default: config)")
    p.add_argument("--end", type=utc_time, default=None,
                   help="end of the training data, UTC, excluded: no target at or after it is learnt "
                        f"(default: config; {RANGE_CONVENTION})")
    p.add_argument("--out", default=None, help="root to write models/<version>/ under (default: store root)")
    p.add_argument("--family", choices=C.TRAIN_FAMILIES, default=C.TRAIN_FAMILY,
                   help="model family (default %(default)s, chosen by backtest)")
    p.add_argument("--no-backtest", dest="backtest", action="store_false",
                   help="skip the rolling-origin backtest written into metadata.json (promotion then refuses it)")
    p.add_argument("--promote", action="store_true", help="promote the new model (the one both products, day-ahead "
                                                           "and nowcast, serve) if it beats persistence and the "
                                                           "champion on its backtest")
    p.add_argument("--seed", type=int, default=C.TRAIN_SEED)
    p.set_defaults(func=cmd_train)

    e = subparsers.add_parser("evaluate", help="scores vs persistence and the other baselines: of a model.tar.gz on "
                                               "a span (--model), or rolling-origin backtest of candidates (--backtest)")
    e.add_argument("--config", default="configs/local.yaml", help="for the default snapshot root")
    e.add_argument("--model", default=None, help="model.tar.gz URI (s3:// or local): score it by day, "
                                                 "flagging days inside its training span as in_sample")
    e.add_argument("--backtest", action="store_true",
                   help="for each Europe/Paris day D of the span, train on the days before D and forecast D")
    e.add_argument("--families", default=",".join(C.TRAIN_FAMILIES),
                   help="backtest candidates, comma-separated (default %(default)s)")
    e.add_argument("--score-cold-start", action="store_true",
                   help="--backtest: also score days whose day type (working / non-working) no earlier day had; "
                        "by default they are listed as skipped (the model serves persistence on them)")
    e.add_argument("--days", type=iso_date, nargs="*", default=None, help="backtest only these days (YYYY-MM-DD)")
    e.add_argument("--snapshots", default=None, help="root holding velib/snapshots/ (default: from the config)")
    e.add_argument("--start", type=utc_time, required=True,
                   help="first hour of data (--backtest) or first origin (--model), UTC, included")
    e.add_argument("--end", type=utc_time, required=True,
                   help="end of the data hours (--backtest) or of the origins (--model), UTC, excluded: "
                        "[start, end) like every range of velibcast")
    e.add_argument("--json", action="store_true", help="print JSON instead of the table")
    e.add_argument("--json-out", default=None, help="--backtest: also write the JSON (every score per horizon and "
                                                    "day, the reliability diagrams' data) to this local path")
    e.set_defaults(func=cmd_evaluate)

    m = subparsers.add_parser("models", help="model versions, their backtests, and the champion the nightly run uses")
    m.add_argument("--config", default="configs/local.yaml", help="for the store root")
    msub = m.add_subparsers(dest="models_command", required=True)
    msub.add_parser("list", help="versions with family, training span and backtest summary; * marks the champion")
    sh = msub.add_parser("show", help="one version's metadata and backtest table (default: the champion)")
    sh.add_argument("version", nargs="?", default=None)
    pr = msub.add_parser("promote", help="make VERSION the champion, if it beats persistence and the champion")
    pr.add_argument("version")
    pr.add_argument("--force", action="store_true", help="promote even if it loses (recorded in the pointer)")
    pr.add_argument("--reason", default=None, help="why (recorded in the pointer)")
    m.set_defaults(func=cmd_models)


def _in_utc(t: datetime | None) -> datetime | None:
    """A config time (checked zoned when the config was loaded) in UTC, like the command line's."""
    return t.astimezone(UTC) if t else None


def cmd_train(args) -> int:
    cfg = load_config(args.config)
    start = args.start or _in_utc(cfg.model.train_start)
    end = args.end or _in_utc(cfg.model.train_end)
    if start is None or end is None:
        raise ConfigError("no training span: give --start and --end, or model.train_start/train_end in the config")
    check_range(start, end, "--start" if args.start else f"model.train_start of {cfg.source}",
                "--end" if args.end else f"model.train_end of {cfg.source}")
    from velibcast.flows.train import train  # lazy, per command: Prefect (~2 s) and torch (~2 s) only when training

    if not args.debug:
        console_without_tracebacks()
    info = train(config=args.config, start=start, end=end, family=args.family, snapshots=args.snapshots,
                 out=args.out, seed=args.seed, backtest=args.backtest,
                 promote=args.promote)
    print(f"model {info['version']}: {info['model_uri']}")
    if info["metrics"].get("backtest"):
        # lazy, per command: the training stack (NumPy, LightGBM) only when a command needs it
        from velibcast.training.backtest import format_table

        print(format_table(info["metrics"]["backtest"]))
    if info.get("promotion"):
        print(info["promotion"])
    return 0


def cmd_evaluate(args) -> int:
    check_range(args.start, args.end)
    cfg = load_config(args.config)
    snapshots = args.snapshots or cfg.snapshots_root
    storage = cfg.storage()
    from velibcast.datasets.snapshots import list_snapshots  # lazy, per command: NumPy only past the range check

    # the data hours of the span: a span with none scores nothing, and would print an empty table
    if not list_snapshots(storage, snapshots, args.start, args.end - timedelta(hours=1)):
        raise ConfigError(f"no snapshot under {snapshots} captured in [{iso_minute(args.start)}, "
                          f"{iso_minute(args.end)}); check --start/--end and --snapshots (or snapshots.root in "
                          f"{cfg.source}), or bring them in with `velibcast snapshots import`")
    if args.backtest:
        # lazy, per command: the training stack (NumPy, LightGBM) only when a command needs it
        from velibcast.training.backtest import format_table, rolling_origin
        from velibcast.training.samples import stream_samples

        families = [f.strip() for f in args.families.split(",") if f.strip()]
        bad = [f for f in families if f not in C.TRAIN_FAMILIES]
        if bad:
            raise ConfigError(f"--families: unknown {bad}; use some of {', '.join(C.TRAIN_FAMILIES)}")
        # stream_samples takes its last hour; the command line is half-open like every other range.
        samples, _ = stream_samples(storage, snapshots, args.start, args.end - timedelta(hours=1), SkipReport(),
                                     states_root=cfg.root)
        # Progress on stderr, so --json output stays parseable.
        bt = rolling_origin(samples, families, days=args.days, score_cold_start=args.score_cold_start, progress=lambda line: print(line, file=sys.stderr))
        if not bt["days"]:
            why = "; ".join(f"{s['day']}: {s['reason']}" for s in bt["skipped_days"]) or \
                "no origin in it has 24 h of history and observed targets"
            raise ConfigError(f"no day of [{iso_minute(args.start)}, {iso_minute(args.end)}) could be backtested "
                              f"({why}); widen the span: each day is scored by a model trained on the days before it")
        if args.json_out:
            Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.json_out).write_text(json.dumps(bt, indent=2) + "\n")
        print(json.dumps(bt, indent=2) if args.json else format_table(bt))
        return 0
    if not args.model:
        raise ConfigError("give --model URI to score a model on the span, or --backtest to retrain candidates per day")
    # lazy, per command: the training stack (NumPy, LightGBM) only when a command needs it
    from velibcast.training.evaluate import evaluate_model

    res = evaluate_model(storage, args.model, snapshots, args.start, args.end - timedelta(hours=1), states_root=cfg.root)
    if args.json:
        print(json.dumps(res, indent=2))
        return 0
    print(f"model {res['model']} (trained on {res['training_span']}), {res['samples']} windows")
    for r in res["by_day"]:
        flag = "IN SAMPLE (the model saw these targets)" if r["in_sample"] else "out of sample"
        print(f"  {r['day']} {r['day_type']:<12} {r['windows']:>6} windows, {flag}: MAE T+1/2/3/6/12/24h "
              + ", ".join(f"{k} {'/'.join('-' if m[h - 1] is None else f'{m[h - 1]:.3f}' for h in (1, 2, 3, 6, 12, 24))}"
                          for k, m in r["mae"].items()))
    return 0


def cmd_models(args) -> int:
    # lazy, per command: the training stack (NumPy, LightGBM) only when a command needs it
    from velibcast.training import registry

    cfg = load_config(args.config)
    check_store_exists(cfg)  # else a mistyped root reads as a store with no model
    storage, root = cfg.storage(), cfg.root
    if args.models_command == "list":
        rows = registry.describe(storage, root)
        if not rows:
            print(f"no model under {registry.models_root(root)}/; train one with `velibcast train`")
        for r in rows:
            bt = r["backtest"]
            ev = ("no backtest day" if bt is None else
                  f"backtest {len(bt['days'])} days, MAE vs persistence by horizon: " + ", ".join(
                      f"{b} {m:.3f}/{p:.3f}" for b, m, p in zip(bt["buckets"], bt["mae_by_bucket"],
                                                                bt["persistence_mae_by_bucket"])
                      if m is not None and p is not None))
            td = r["training_data"]
            trained = f"trained {td['start']}..{td['end']}" if td["start"] else "not trained on data"
            print(f"{'*' if r['champion'] else ' '} {r['version']}  {r['family']}  {trained}  {ev}")
        return 0
    if args.models_command == "show":
        version = args.version
        if version is None:
            champ = registry.read_champion(storage, root)
            if champ is None:
                print(f"no champion ({registry.champion_uri(root)}); give a VERSION")
                return 1
            version = champ["version"]
            print(json.dumps(champ, indent=2))
        meta = registry.read_metadata(storage, registry.model_uri(root, version))
        print(json.dumps({k: v for k, v in meta.items() if k != "metrics"}, indent=2))
        bt = registry.backtest_of(meta)
        if bt:
            # lazy, per command: the training stack (NumPy, LightGBM) only when a command needs it
            from velibcast.training.backtest import format_table

            print(format_table(bt))
        return 0
    pointer = registry.promote(storage, root, args.version, force=args.force, reason=args.reason)
    print(f"champion: {pointer['version']} ({registry.champion_uri(root)})"
          + (f"; forced over: {'; '.join(pointer['overridden'])}" if pointer["forced"] else ""))
    return 0
