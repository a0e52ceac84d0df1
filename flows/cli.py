"""`velibcast` command line: ad-hoc runs, the demo, and each stage's own commands.

Stage packages add their subcommands through `register(subparsers)`, so this file only
knows the run-level commands. Arguments and the config are checked before Prefect starts,
so a user error is reported in about a second, in one or two lines, with exit status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import traceback
from datetime import date, datetime, timedelta
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from velibcast import constants as C
from velibcast import process_settings
from velibcast.batch_transform import cli as bt_cli
from velibcast.cli_types import RANGE_CONVENTION, Parser, check_range, iso_date, share_options, utc_time
from velibcast.config import check_store_exists, check_store_writable, load_config
from velibcast.datasets import cli as ds_cli
from velibcast.errors import ConfigError, VelibcastError
from velibcast.flows import cost, prefect_api, prefect_logs
from velibcast.flows.products import PRODUCTS
from velibcast.timeutil import UTC, iso_minute
from velibcast.training import cli as tr_cli


def _print_result(res: dict) -> None:
    c = res["counts"]
    print(f"forecasts: {res['forecast_parquet']}")
    print(f"manifest:  {res['manifest_uri']}")
    print(f"stations seen {c['stations_seen']}, windows emitted {c['windows_emitted']}, "
          f"skipped {c['windows_skipped']} {json.dumps(c['windows_skipped_by_reason'])}, "
          f"records sent {c['records_sent']}, predictions written {c['predictions_written']}, "
          f"forecast rows {c['forecast_rows']}; coverage of open station-origins {c['coverage']:.1%} "
          f"of {c['station_origins_open']}")
    if res.get("report_png"):
        print(f"report:    {res['report_png']}")
    if res.get("reused"):
        print(res["reused"])
    if res.get("cost_estimate"):
        print(cost.summary_line(res["cost_estimate"]))
    if res.get("verdict"):
        print(f"verdict:   {res['verdict']}")


def _checked_config(path: str):
    """Load and check the config before Prefect starts: a user error costs a second, not a server start."""

    cfg = load_config(path)
    check_store_writable(cfg)
    return cfg


def _checked_run_config(path: str, args=None):
    """_checked_config, and the run's model (model.uri, else the store's champion) exists, reads and
    meets the feature contract; with a run's args, the snapshot store has captures for its hours.
    Returns the config and the Paris day a run without a range forecasts, decided here once: the
    flow is given the day these checks looked at, even when midnight passes before it starts."""

    cfg = load_config(path)
    from velibcast.flows import preflight  # after the config: a config error imports no NumPy

    if args is None:
        preflight.check_run(cfg, None)
        return cfg, None
    run_date = None if args.start is not None else (args.run_date or preflight.default_run_date(cfg))
    preflight.check_run(cfg, preflight.run_origins(cfg, run_date, args.start, args.end))
    return cfg, run_date


def _prefect_console(args) -> None:
    """After Prefect is imported: a failed run's traceback only with --debug (the error's line ends the output)."""
    if not args.debug:
        prefect_logs.console_without_tracebacks()


def cmd_run(args) -> int:
    dated = args.run_date is not None or args.start is not None or args.end is not None
    product = args.product or ("evaluation" if dated else "day-ahead")
    if product != "evaluation":
        if dated:
            raise ConfigError(f"--product {product} forecasts from an --as-of time (default: now); --run-date and "
                              "--start/--end belong to the evaluation product (--product evaluation)")
        return _run_product(args, product)
    if args.as_of is not None:
        raise ConfigError("--as-of belongs to the day-ahead and nowcast products; the evaluation product takes "
                          "--run-date or --start/--end")
    if (args.start is None) != (args.end is None):
        raise ConfigError("give both --start and --end, or neither (--run-date alone names a whole Paris day)")
    if args.start is not None:
        check_range(args.start, args.end)
    _, run_date = _checked_run_config(args.config, args)
    server = prefect_api.start()  # boots on the other core while Prefect and the pipeline load
    # lazy, per command: --help and user errors exit in ~0.2 s, before Prefect (~2 s) loads
    from velibcast.flows.nightly import nightly

    _prefect_console(args)
    with prefect_api.serving(server):
        res = nightly(run_date=run_date, config=args.config, start=args.start, end=args.end, force=args.force)
    _print_result(res)
    return 0


def _run_product(args, product: str) -> int:
    cfg = load_config(args.config)
    # lazy, per command: a config error imports no NumPy
    from velibcast.flows import preflight

    preflight.check_run(cfg)  # the store and the model first: a wrong root is not "no snapshot"
    spec = preflight.product_spec(cfg, product, args.as_of)
    assert spec.as_of is not None and spec.start is not None  # product_spec sets both
    print(f"{product} as of {iso_minute(spec.as_of)}: origin {iso_minute(spec.start)} (the latest whole hour with data)")
    server = prefect_api.start()  # boots on the other core while Prefect and the pipeline load
    from velibcast.flows.nightly import forecast  # lazy, per command: Prefect (~2 s) loads only for a run

    _prefect_console(args)
    with prefect_api.serving(server):
        res = forecast(product=product, as_of=spec.as_of, config=args.config, force=args.force)
    _print_result(res)
    return 0


def _when(t: datetime | None) -> str:
    """A config time as the command line writes it (UTC, to the minute); unset reads as such."""
    return "unset" if t is None else iso_minute(t.astimezone(UTC))


def cmd_demo(args) -> int:
    """Seed the store from the repository's sample_data, train a model if none exists, issue the
    day-ahead forecast as of run.default_as_of, and score it against what happened that day."""
    cfg = _checked_config(args.config)
    root = Path(cfg.root)
    sample = Path("sample_data")
    snaps = root / "velib" / "snapshots"
    if not snaps.exists():
        if not (sample / "velib").is_dir():
            raise ConfigError(f"no snapshots in {snaps} and no ./sample_data to seed them from; run the demo from "
                              "a clone of the repository (make demo), or import snapshots first")
        print(f"seeding {snaps} from {sample}")
        shutil.copytree(sample / "velib", root / "velib", dirs_exist_ok=True)
    from velibcast.flows import preflight  # lazy, per command: a config error imports no NumPy

    spec = preflight.product_spec(cfg, "day-ahead", None)
    assert spec.as_of is not None and spec.start is not None  # product_spec sets both
    server = prefect_api.start()  # boots on the other core while Prefect and the pipeline load
    # lazy, per command: --help and user errors exit in ~0.2 s, before Prefect (~2 s) loads
    from velibcast.flows.nightly import forecast
    from velibcast.flows.score import score_run
    from velibcast.training import registry  # lazy, per command: the registry only when demo checks for a champion

    _prefect_console(args)
    with prefect_api.serving(server):
        if registry.read_champion(cfg.storage(), cfg.root) is None:
            # lazy, per command: --help and user errors exit in ~0.2 s, before Prefect (~2 s) loads
            from velibcast.flows.train import train

            m = cfg.model
            print(f"training the default family on [{_when(m.train_start)}, {_when(m.train_end)}); the day-ahead forecast "
                  f"below, as of {iso_minute(spec.as_of)}, forecasts hours after it, out of sample")
            info = train(config=args.config, backtest=False)  # the scored day below is its evidence
            print(f"model {info['version']}: {info['model_uri']}")
            # The demo serves what it trained, whatever its backtest says: the scored day below is
            # the evidence, and the promotion says it was forced.
            pointer = registry.promote(cfg.storage(), cfg.root, info["version"], force=True,
                                       reason="demo: serve the model just trained")
            print(f"champion: {pointer['version']}" + (f" (forced: {'; '.join(pointer['overridden'])})"
                                                       if pointer["forced"] else ""))
        print(f"day-ahead as of {iso_minute(spec.as_of)}: origin {iso_minute(spec.start)}")
        res = forecast(product="day-ahead", as_of=spec.as_of, config=args.config, force=args.force)
        _print_result(res)
        # The bundled sample holds the day that was forecast: score it now, as the next
        # nights' runs would once its hours are observed.
        scored = score_run(cfg.storage(), cfg, spec.run_date, product="day-ahead")
        _print_score(scored)
        return 0


def cmd_backfill(args) -> int:
    if args.end_date <= args.start_date:
        raise ConfigError(f"--end-date {args.end_date} must be after --start-date {args.start_date} "
                          f"({RANGE_CONVENTION}; one night: --end-date {args.start_date + timedelta(days=1)})")
    _checked_run_config(args.config)
    server = prefect_api.start()  # boots on the other core while Prefect and the pipeline load
    # lazy, per command: --help and user errors exit in ~0.2 s, before Prefect (~2 s) loads
    from velibcast.flows.backfill import backfill

    _prefect_console(args)
    with prefect_api.serving(server):
        res = backfill(start_date=args.start_date, end_date=args.end_date, config=args.config,
                       force=args.force, max_concurrency=args.max_concurrency)
    for r in res["dates"]:
        print(f"{r['run_date']}: {r['status']}" + (f" ({r['error']})" if r.get("error") else ""))
    print(json.dumps(res["summary"]))
    return 1 if res["summary"]["failed"] else 0


def cmd_score(args) -> int:
    cfg = load_config(args.config)
    check_store_exists(cfg)  # a wrong root is not "nothing published"
    check_store_writable(cfg)  # the scores are written beside the forecasts
    # lazy, per command: --help and user errors exit in ~0.2 s, before pandas and Prefect load
    from velibcast.flows.score import NO_FORECASTS, score_run

    res = score_run(cfg.storage(), cfg, args.run_date, product=args.product)
    if res["status"] == NO_FORECASTS:
        run = (f"velibcast run --run-date {args.run_date}" if args.product == "evaluation"
               else f"velibcast run --product {args.product} --as-of TIME")
        raise ConfigError(f"{res['message']}; publish them first with `{run} --config {args.config}`"
                          + ("" if args.product == "evaluation" else f" (TIME on {args.run_date} in Paris)"))
    _print_score(res)
    return 0


def cmd_ingest(args) -> int:
    """Bring the stored states of the UTC days asked up to the captures in the store, without Prefect's server."""
    if args.start is not None and args.end is None:
        raise ConfigError("--start needs --end ([start, end) of UTC hours); or give --end alone, or neither, "
                          "for the --days-back days before it and its day")
    if args.start is not None and args.days_back is not None:
        raise ConfigError("--days-back counts the days before --end's day; with --start, [start, end) names the days")
    if args.start is not None:
        check_range(args.start, args.end)
    cfg = _checked_config(args.config)
    # lazy, per command: --help and user errors exit in ~0.2 s, before Prefect and pyarrow load
    from velibcast.datasets.ingest import date_prefix, dates_of, partition_uri
    from velibcast.flows.ingest import DEFAULT_DAYS_BACK, ingest_range, run_ingest

    days_back = DEFAULT_DAYS_BACK if args.days_back is None else args.days_back
    start, end = (args.start, args.end) if args.start is not None else ingest_range(args.end, days_back)
    storage = cfg.storage()
    existed = {d.isoformat() for d in dates_of(start, end) if storage.exists(partition_uri(cfg.root, d))}
    res = run_ingest(args.config, start, end)
    if args.json:
        print(json.dumps(res))
        return 0
    for d in (d.isoformat() for d in dates_of(start, end)):
        if d in res["written"]:
            state = ("a changed capture's hours rebuilt" if d in res["rebuilt"] else "new captures added") if d in existed \
                else "created"
            hours = sum(h.startswith(d) for h in res["hours_written"])
            print(f"{d}: {state}, {hours} hours written  {date_prefix(cfg.root, date.fromisoformat(d))}/")
        else:
            print(f"{d}: {'unchanged' if d in res['unchanged'] else 'no captures'}")
    skipped = res["report"]["counts"]
    print(f"{len(res['written'])} dates written, {len(res['unchanged'])} unchanged; "
          f"{res['captures_parsed']} captures parsed" + (f", skipped {json.dumps(skipped)}" if skipped else ""))
    return 0


def _num(v, fmt: str = ".2f") -> str:
    return "-" if v is None else format(v, fmt)


def _brier(r: dict, event: str) -> str:
    """A horizon's Brier score of p_<event> and its skill against the station's historical frequency
    and against persistence (> 0: better than that reference)."""
    return (f"{_num(r[f'brier_{event}'], '.3f')}  {_num(r[f'brier_skill_{event}_climatology'], '+.2f')}"
            f"/{_num(r[f'brier_skill_{event}'], '+.2f')}")


def _print_score(res: dict) -> None:
    """The accuracy of a product's date per horizon: MAE against persistence and the proper scores."""
    print(res["message"])
    if res.get("verdict"):
        print(f"verdict: {res['verdict']}")
    rows = res.get("by_horizon", [])
    if rows:
        print("  h   rows   MAE model  persist.  pinball p10/p50/p90   cover80  Brier empty, skill vs freq./pers."
              "  Brier full, skill vs freq./pers.")
    for r in rows:
        print(f"  {r['horizon_h']:>2} {r['scored_rows']:>6}   {_num(r['mae_model']):>9} {_num(r['mae_persistence']):>9}"
              f"  {_num(r['pinball_bikes_p10'])}/{_num(r['pinball_bikes_p50'])}/{_num(r['pinball_bikes_p90'])}"
              f"        {_num(r['coverage_p10_p90'], '.0%'):>5}   {_brier(r, 'empty'):<34} {_brier(r, 'full')}")
    if res.get("accuracy_uri"):
        print(f"accuracy: {res['accuracy_uri']}")


DESCRIPTION = f"""Hourly Vélib' availability forecasts for every Paris station, in batch on
SageMaker Batch Transform or on velibcast's local runtime.

Start with:  velibcast run --config configs/local.yaml --product day-ahead --as-of 2022-05-25T02:30+02:00
Times are ISO with a zone (2022-05-26T06:00Z); dates are Europe/Paris days (YYYY-MM-DD);
{RANGE_CONVENTION}.
Errors print what, where and how to fix, and exit 2; --debug adds the traceback."""

CONFIG_HELP = "run configuration YAML (default: configs/local.yaml, also found in the installed package)"


def _add_config(p) -> None:
    p.add_argument("--config", default="configs/local.yaml", metavar="YAML", help=CONFIG_HELP)


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="velibcast", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"velibcast {_version()}")
    p.add_argument("--debug", action="store_true", help="show the full traceback when a command fails")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    r = sub.add_parser("run", help="forecast once (ad hoc): day-ahead, nowcast, or the evaluation of past days",
                       description=(
        "Forecast the hours ahead as of a time (--product day-ahead: horizons 1..24, the default; --product "
        "nowcast: 1..3), from the latest whole hour with data at --as-of, reading no capture taken after it; or, "
        "as the evaluation product, every hourly origin of one past Europe/Paris day (--run-date) or of "
        "[--start, --end). " + RANGE_CONVENTION))
    _add_config(r)
    r.add_argument("--product", choices=list(PRODUCTS), default=None,
                   help="day-ahead (default), nowcast, or evaluation (the default when --run-date or --start is given)")
    r.add_argument("--as-of", type=utc_time, default=None, metavar="TIME",
                   help="forecast as of this time (ISO with a zone; default: now): no capture taken after it is read")
    r.add_argument("--run-date", type=iso_date, default=None, metavar="YYYY-MM-DD",
                   help="Europe/Paris day to forecast (default: the config's run.default_run_date, else yesterday)")
    r.add_argument("--start", type=utc_time, default=None, metavar="TIME",
                   help="first origin, included (ISO time with zone, e.g. 2022-05-26T06:00Z); needs --end")
    r.add_argument("--end", type=utc_time, default=None, metavar="TIME",
                   help="end of the origin range, excluded: [start, end)")
    r.add_argument("--force", action="store_true", help="recompute stages even if a previous attempt completed them")
    r.set_defaults(func=cmd_run)

    d = sub.add_parser("demo", help="seed ./data from the bundled sample, train if needed, forecast a day ahead",
                       description="Seed ./data from the bundled sample, train the default family on "
                       "model.train_start/train_end if the store has no champion, issue the day-ahead forecast as "
                       "of run.default_as_of, and score it against the day that followed.")
    _add_config(d)
    d.add_argument("--force", action="store_true", help="recompute stages even if a previous attempt completed them")
    d.set_defaults(func=cmd_demo)

    b = sub.add_parser("backfill", help="one nightly run per date in [start, end), skipping complete dates",
                       description="One nightly run per Europe/Paris date in [--start-date, --end-date). "
                       + RANGE_CONVENTION)
    _add_config(b)
    b.add_argument("--start-date", type=iso_date, required=True, metavar="YYYY-MM-DD", help="first date, included")
    b.add_argument("--end-date", type=iso_date, required=True, metavar="YYYY-MM-DD",
                   help="end date, excluded: [start, end) (one night: the day after --start-date)")
    b.add_argument("--force", action="store_true", help="rerun dates that are already complete")
    b.add_argument("--max-concurrency", type=int, default=2, help="dates run at once (default 2)")
    b.set_defaults(func=cmd_backfill)

    sc = sub.add_parser("score", help="accuracy of a product's published date: MAE vs persistence, proper scores",
                        description="Score the forecasts a product published for a Europe/Paris date against the "
                        "snapshots observed since: per horizon, MAE of the model and of persistence, pinball loss "
                        "of P10/P50/P90, coverage of the P10-P90 interval, Brier scores of p_empty and p_full "
                        "beside persistence's. Written to accuracy/product=P/run_date=D/.")
    _add_config(sc)
    sc.add_argument("--run-date", type=iso_date, required=True, metavar="YYYY-MM-DD", help="Europe/Paris day")
    sc.add_argument("--product", choices=list(PRODUCTS), default="evaluation",
                    help="which product's forecasts (default: evaluation)")
    sc.set_defaults(func=cmd_score)

    ig = sub.add_parser("ingest", help="bring the hourly station states (docs/states-dataset.md) up to the captures "
                        "in the store",
                        description="Bring the hourly station states (<store.root>/states/date=D/part-HH.parquet, one object "
                        "per UTC hour, and the date's ledger _ledger.json; docs/states-dataset.md) of whole UTC days "
                        "up to the captures in the store: a date whose captures are all folded in already is left "
                        "as is, new captures are folded in and only the hours whose rows they change are rewritten, "
                        "a changed or removed capture has the hours it reaches rebuilt. By default the --days-back days before --end "
                        "(default: now) and its day; or the days of [--start, --end). " + RANGE_CONVENTION)
    _add_config(ig)
    ig.add_argument("--start", type=utc_time, default=None, metavar="TIME",
                    help="first hour, included (ISO time with zone); needs --end; the UTC days of the hours in "
                         "[start, end) are ingested whole")
    ig.add_argument("--end", type=utc_time, default=None, metavar="TIME",
                    help="with --start: end of the hours, excluded; alone: its UTC day is the last one ingested "
                         "(default: now)")
    ig.add_argument("--days-back", type=int, default=None, metavar="N",
                    help="without --start: also the N days before --end's day (default: the scheduled "
                         "ingest-states flow's, 2: the days a capture taken now can reach, and the day before)")
    ig.add_argument("--json", action="store_true", help="print the result as JSON instead of a line per date")
    ig.set_defaults(func=cmd_ingest)

    for module in (ds_cli, tr_cli, bt_cli):
        module.register(sub)
    # where users type them: `velibcast models list --config X` and `velibcast run --debug ...`
    share_options(p, ("--config", "--debug"))
    return p


def _version() -> str:
    try:
        return version("velibcast")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown (not installed)"


def main(argv=None) -> int:
    # This process is the command's own: it assembles windows, so it takes the allocator and
    # collector settings for that (process_settings), which library code leaves to its caller.
    process_settings.for_batch_runs()
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", str(C.PREFECT_EPHEMERAL_STARTUP_TIMEOUT_S))
    debug = "--debug" in (sys.argv[1:] if argv is None else argv)
    try:
        parser = build_parser()
        args = parser.parse_args(argv)  # --help and usage errors write too: inside the BrokenPipe guard
        if args.command == "run" and args.run_date is not None and (args.start or args.end) is not None:
            parser.error("run: --run-date and --start/--end exclude each other: a range publishes under the "
                             "Paris dates of its own origins (drop --run-date)")
        return args.func(args) or 0
    except BrokenPipeError:
        # `velibcast ... | head`: the reader left; say nothing and do not let the interpreter's
        # final flush of stdout fail again (the recipe of Python's signal docs).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except VelibcastError as e:
        if debug:
            traceback.print_exc()
        print(f"error: {e}", file=sys.stderr)
        return 2
    except Exception as e:
        if debug:
            raise
        print(f"error: {type(e).__name__}: {e}\n(unexpected; rerun with --debug for the traceback and report it)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
