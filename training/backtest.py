"""Rolling-origin backtests: for each Europe/Paris day D of a span, train on the samples whose
targets all lie before D, forecast every window of D, score model, persistence and seasonal-naive.

Every day of the table is out of sample by construction. A day with no training sample
before it is listed under `skipped_days` with the reason, never dropped silently; so is a
cold-start day, one whose day type (working / non-working) no training day had: no model
can learn a day type from data that lacks it, and the gbm serves persistence there (its
fallback), so the row would be a tie by construction. `score_cold_start=True` scores them.
"""

from __future__ import annotations

import time
from datetime import date
from typing import Any

import numpy as np

from velibcast import constants as C
from velibcast.training import evaluate
from velibcast.training.samples import Samples
from velibcast.transform_code import velib_features as F

BASELINES = ("persistence", "seasonal_naive")


def rolling_origin(samples: Samples, families: list[str], seed: int | None = None, max_seconds: float | None = None,
                   progress=print, days: list[date] | None = None, score_cold_start: bool = False) -> dict:
    # lazy: import cycle: train imports backtest for its backtest summary
    from velibcast.training.train import fit_family

    seed = C.TRAIN_SEED if seed is None else seed
    lstm_seconds = C.BACKTEST_LSTM_MAX_SECONDS if max_seconds is None else min(max_seconds, C.BACKTEST_LSTM_MAX_SECONDS)
    origin_day = samples.local_days()
    target_day = Samples(samples.x, samples.y, np.minimum(samples.origin + F.HORIZONS, len(samples.hours) - 1),
                         samples.station, samples.hours).local_days()
    n_stations = int(samples.x[:, F.COL["station_index"]].max()) if len(samples) else 0
    non_working = samples.x[:, F.COL[F.NON_WORKING]] == 1
    wanted = None if days is None else {d.toordinal() for d in days}
    rows, skipped = [], []
    t0 = time.monotonic()
    for d in np.unique(origin_day):
        day = date.fromordinal(int(d))
        if wanted is not None and int(d) not in wanted:
            continue
        train, test = target_day < d, origin_day == d
        if not train.any():
            skipped.append({"day": day.isoformat(), "reason": "no training sample has all its targets before this day"})
            continue
        kind = evaluate.day_type(day)
        train_kinds = non_working[train]
        if not score_cold_start and not (train_kinds if kind == evaluate.NON_WORKING else ~train_kinds).any():
            skipped.append({"day": day.isoformat(), "reason": f"cold start: no {kind} day before it to learn its "
                            "day type from (the model serves persistence on it; score_cold_start scores it)"})
            continue
        tr, te = samples.take(train), samples.take(test)
        train_days = np.unique(origin_day[train])
        row: dict[str, Any] = {"day": day.isoformat(), "day_type": kind, "windows": len(te),
               "train_samples": len(tr), "train_days": [date.fromordinal(int(train_days[0])).isoformat(),
                                                        date.fromordinal(int(train_days[-1])).isoformat()],
               "train_non_working_samples": int(train_kinds.sum()),
               "mae": evaluate.mae_table(None, te.x, te.y)}
        for fam in families:
            progress(f"backtest {day}: fitting {fam} on {len(tr)} samples ({time.monotonic() - t0:.1f} s elapsed)")
            fitted = fit_family(fam, tr, n_stations, seed, lstm_seconds, progress)
            row["mae"][fam] = evaluate.mae_table(fitted.predict, te.x, te.y, fam)[fam]
        rows.append(row)
        progress(f"backtest {day} ({row['day_type']}, {len(te)} windows): "
                 + ", ".join(f"{k} {'/'.join(f'{v:.3f}' for v in m)}" for k, m in row["mae"].items()))
    return {"method": "rolling origin by Europe/Paris day: train on samples whose targets precede the day",
            "candidates": list(families), "days": rows, "skipped_days": skipped, "summary": summarise(rows, families)}


def summarise(rows: list[dict], families: list[str]) -> dict:
    """Per candidate: MAE by horizon averaged over days, gain over persistence, whether it beat
    persistence at every horizon on every day, and MAE by day type (windows-weighted)."""
    out: dict[str, dict] = {}
    if not rows:
        return out
    for name in [*families, *BASELINES]:
        mean = np.mean([r["mae"][name] for r in rows], axis=0)
        pers = np.mean([r["mae"]["persistence"] for r in rows], axis=0)
        entry: dict[str, Any] = {"mae_mean_over_days": [round(float(v), 4) for v in mean],
                 "gain_vs_persistence_pct": [round(float(100 * (1 - m / p)), 1) if p else None
                                             for m, p in zip(mean, pers)],
                 "beats_persistence_every_day_every_horizon": all(
                     all(m < p for m, p in zip(r["mae"][name], r["mae"]["persistence"])) for r in rows),
                 "by_day_type": {}}
        for dt in (evaluate.WORKING, evaluate.NON_WORKING):
            sel = [r for r in rows if r["day_type"] == dt]
            if sel:
                w = np.array([r["windows"] for r in sel], dtype=np.float64)
                m = np.average([r["mae"][name] for r in sel], axis=0, weights=w)
                entry["by_day_type"][dt] = {"days": len(sel), "windows": int(w.sum()),
                                            "mae": [round(float(v), 4) for v in m]}
        out[name] = entry
    return out


def format_table(bt: dict) -> str:
    """The backtest as text: one line per day and candidate, then the averages and day types."""
    names = [*bt.get("candidates", []), *BASELINES]
    lines = [f"{'day':<11} {'type':<12} {'windows':>7}  {'forecaster':<15} {'T+1h':>6} {'T+2h':>6} {'T+3h':>6}"]
    for r in bt["days"]:
        for n in names:
            m = r["mae"][n]
            lines.append(f"{r['day']:<11} {r['day_type']:<12} {r['windows']:>7}  {n:<15} "
                         + " ".join(f"{v:6.3f}" for v in m))
    for s in bt.get("skipped_days", []):
        lines.append(f"{s['day']:<11} skipped: {s['reason']}")
    for n, e in bt.get("summary", {}).items():
        lines.append(f"mean over days {n:<15} " + " ".join(f"{v:6.3f}" for v in e["mae_mean_over_days"])
                     + "   gain vs persistence " + " / ".join(f"{g:+.1f}%" for g in e["gain_vs_persistence_pct"])
                     + ("   beats persistence every day and horizon" if e["beats_persistence_every_day_every_horizon"]
                        and n not in BASELINES else ""))
        for dt, v in e["by_day_type"].items():
            lines.append(f"  {dt:<12} ({v['days']} days, {v['windows']} windows) {n:<15} "
                         + " ".join(f"{x:6.3f}" for x in v["mae"]))
    return "\n".join(lines)
