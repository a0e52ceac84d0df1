"""`velibcast train`: train on a span of snapshots and write models/<version>/model.tar.gz."""

from __future__ import annotations

import json
from datetime import timedelta

from velibcast import constants as C
from velibcast.cli_types import utc_time


def register(subparsers) -> None:
    p = subparsers.add_parser("train", help="train the LSTM on snapshots, score it against baselines, package it")
    p.add_argument("--config", default="configs/local.yaml",
                   help="run config: store root, snapshots root and model.train_start/train_end defaults")
    p.add_argument("--snapshots", default=None, help="root holding velib/snapshots/ (default: from the config)")
    p.add_argument("--start", type=utc_time, default=None, help="first hour of training data, UTC (default: config)")
    p.add_argument("--end", type=utc_time, default=None, help="last hour of training data, UTC (default: config)")
    p.add_argument("--out", default=None, help="root to write models/<version>/model.tar.gz under (default: store root)")
    p.add_argument("--seed", type=int, default=C.TRAIN_SEED)
    p.add_argument("--max-seconds", type=float, default=C.TRAIN_MAX_SECONDS,
                   help="CPU-seconds cap on the epochs, all threads (default %(default)s)")
    p.set_defaults(func=cmd_train)

    e = subparsers.add_parser("evaluate", help="MAE of a model.tar.gz vs persistence and seasonal-naive on any span")
    e.add_argument("--model", required=True, help="model.tar.gz URI (s3:// or local)")
    e.add_argument("--snapshots", required=True, help="root holding velib/snapshots/")
    e.add_argument("--start", type=utc_time, required=True, help="first origin, UTC, included")
    e.add_argument("--end", type=utc_time, required=True,
                   help="end of the origins, UTC, excluded: [start, end) like every range of velibcast")
    e.set_defaults(func=cmd_evaluate)


def cmd_train(args) -> int:
    from velibcast.training.train import train_model

    from velibcast.config import load_config
    from velibcast.errors import ConfigError

    cfg = load_config(args.config)
    start = args.start or (utc_time(cfg["model"]["train_start"]) if cfg["model"]["train_start"] else None)
    end = args.end or (utc_time(cfg["model"]["train_end"]) if cfg["model"]["train_end"] else None)
    if start is None or end is None:
        raise ConfigError("no training span: give --start and --end, or model.train_start/train_end in the config")
    info = train_model(cfg.storage(), args.snapshots or cfg.snapshots_root, start, end, args.out or cfg.root,
                       seed=args.seed, max_seconds=args.max_seconds)
    print(f"model {info['version']}: {info['model_uri']}")
    print(json.dumps(info["metrics"]["mae_test"]))
    return 0


def cmd_evaluate(args) -> int:
    from velibcast.training.evaluate import evaluate_model

    from velibcast.storage import Storage

    # evaluate_model takes its last origin; the command line is half-open like every other range.
    last = args.end - timedelta(hours=1)
    print(json.dumps(evaluate_model(Storage(), args.model, args.snapshots, args.start, last), indent=2))
    return 0
