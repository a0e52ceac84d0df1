"""Rolling-origin backtests: for each Europe/Paris day D of a span, train on the targets before D
(an origin of the day before keeps its horizons that end before D), forecast every origin hour
of D at every horizon, score model and baselines (training.evaluate).

Every day of the table is out of sample by construction: the model, its profiles, its
calibration and the profile and climatology references are all built from targets before D.
Every hour of D is an origin (24 a day, more stable than the one 02:00 origin of the nightly):
the nowcast product is horizons 1..3 of those forecasts, the day-ahead product all 24. A day with
no training sample before it is listed under `skipped_days` with the reason, never dropped
silently; so is a cold-start day, one whose day type (working / non-working) no training day had:
no model can learn a day type from data that lacks it, and the gbm serves persistence there (its
fallback), so the row would be a tie by construction. `score_cold_start=True` scores them.

So every row scored here is one the model served: the samples are windows with a usable state at the
origin, never a stale one (served the profile, `fallback` "profile", in production), and the only
other fallback (persistence on an unlearnt day type) is on the cold-start days listed apart; with
`score_cold_start`, their persistence-served rows count as the model's and tie with persistence.
"""

from __future__ import annotations

import time
from datetime import date
from typing import Any

import numpy as np

from velibcast import constants as C
from velibcast.proper_scores import HORIZON_BUCKETS
from velibcast.timeutil import PARIS
from velibcast.training import evaluate
from velibcast.training.evaluate import BASELINES, EVENTS, QUANTILES
from velibcast.training.samples import Samples, as_stale
from velibcast.transform_code import velib_features as F

NOWCAST = (1, 2, 3)
NOWCAST_GOAL_PCT = (10, 15, 20)  # % better than persistence at T+1..3 h
DAY_AHEAD_BUCKETS = HORIZON_BUCKETS
PROFILE_FALLBACK = "profile_fallback"  # a family's scores on the windows served as stale (samples.as_stale)
# What promotion compares: each nowcast horizon, then the day-ahead buckets beyond it.
BUCKETS = (*((h, h) for h in NOWCAST), *DAY_AHEAD_BUCKETS[1:])


def rolling_origin(samples: Samples, families: list[str], seed: int | None = None, progress=print,
                   days: list[date] | None = None, score_cold_start: bool = False) -> dict:
    # lazy: import cycle: train imports backtest for its backtest summary
    from velibcast.training.train import fit_family

    seed = C.TRAIN_SEED if seed is None else seed
    origin_day = samples.local_days()
    hour_day = np.array([h.astimezone(PARIS).date().toordinal() for h in samples.hours])
    n_stations = int(samples.x[:, F.COL["station_index"]].max()) if len(samples) else 0
    seasonal = evaluate.same_day_type(samples)
    wanted = None if days is None else {d.toordinal() for d in days}
    rows, skipped = [], []
    t0 = time.monotonic()
    for d in np.unique(origin_day):
        day = date.fromordinal(int(d))
        if wanted is not None and int(d) not in wanted:
            continue
        train = samples.targets_before(int(np.argmax(hour_day == d)))
        if not len(train):
            skipped.append({"day": day.isoformat(), "reason": "no training sample has a target before this day"})
            continue
        kind = evaluate.day_type(day)
        train_kinds = train.x[:, F.COL[F.NON_WORKING]] == 1
        if not score_cold_start and not (train_kinds if kind == evaluate.NON_WORKING else ~train_kinds).any():
            skipped.append({"day": day.isoformat(), "reason": f"cold start: no {kind} day before it to learn its "
                            "day type from (the model serves persistence on it; score_cold_start scores it)"})
            continue
        test = origin_day == d
        x = samples.x[test].astype(np.float64)
        refs = evaluate.references(train.x, x)
        baselines = {"persistence": evaluate.persistence(x), "same_day_type": seasonal[test],
                     "profile": refs["profile"]}
        train_days = np.unique(train.local_days())
        row: dict[str, Any] = {"day": day.isoformat(), "day_type": kind, "windows": int(test.sum()),
                               "train_samples": len(train),
                               "train_days": [date.fromordinal(int(train_days[0])).isoformat(),
                                              date.fromordinal(int(train_days[-1])).isoformat()],
                               "train_non_working_samples": int(train_kinds.sum()), "scores": {}}
        for fam in families:
            progress(f"backtest {day}: fitting {fam} on {len(train)} samples ({time.monotonic() - t0:.1f} s elapsed)")
            fitted = fit_family(fam, train, n_stations, seed, progress)
            row["scores"][fam] = evaluate.score(fitted.quantities(x), samples.y[test], x, baselines, refs, fam)
            # the same windows served as stale: how the fallback's point and interval hold (no row here is stale)
            fallback = evaluate.score(fitted.quantities(as_stale(x)), samples.y[test], x, {}, None, fam)
            row["scores"][fam][PROFILE_FALLBACK] = {"mae": fallback["mae"][fam],
                                                    "coverage_p10_p90": fallback["coverage_p10_p90"]}
        rows.append(row)
        progress(f"backtest {day} ({kind}, {row['windows']} windows): "
                 + ", ".join(f"{k} {_fmt(_bucket(row['scores'][families[0]]['mae'][k], row['scores'][families[0]]['n'], 1, 3))}"
                             for k in [families[0], *BASELINES]) + " (MAE T+1..3h)")
    return {"method": "rolling origin by Europe/Paris day: train on the targets before the day, forecast every "
                      "origin hour of the day at horizons 1..24",
            "candidates": list(families), "days": rows, "skipped_days": skipped,
            "summary": summarise(rows, families)}


def _bucket(values: list, n: list, lo: int, hi: int) -> float | None:
    """Mean of per-horizon means over horizons lo..hi, weighted by their counts."""
    pairs = [(v, c) for v, c in zip(values[lo - 1 : hi], n[lo - 1 : hi]) if v is not None and c]
    if not pairs:
        return None
    return sum(v * c for v, c in pairs) / sum(c for _, c in pairs)


def _pool(rows: list[dict], fam: str, get) -> list[float | None]:
    """Per horizon, the count-weighted mean over days of get(scores) (a per-horizon list)."""
    out = []
    for h in range(F.MAX_HORIZON):
        pairs = [(get(r["scores"][fam])[h], r["scores"][fam]["n"][h]) for r in rows]
        pairs = [(v, c) for v, c in pairs if v is not None and c]
        out.append(round(sum(v * c for v, c in pairs) / sum(c for _, c in pairs), 4) if pairs else None)
    return out


def summarise(rows: list[dict], families: list[str]) -> dict:
    """Per candidate and baseline: MAE per horizon pooled over days, gain over persistence, whether it
    beat persistence at every horizon on every day; per candidate also the pooled distribution scores,
    Brier skills and the reliability diagram's data."""
    out: dict[str, dict] = {}
    if not rows:
        return out
    fam0 = families[0]
    pers = _pool(rows, fam0, lambda s: s["mae"]["persistence"])
    n = [sum(r["scores"][fam0]["n"][h] for r in rows) for h in range(F.MAX_HORIZON)]
    for name in [*families, *BASELINES]:
        src = name if name in families else fam0
        mae = _pool(rows, src, lambda s, name=name: s["mae"][name])
        by_bucket = [_bucket(mae, n, lo, hi) for lo, hi in BUCKETS]
        pers_bucket = [_bucket(pers, n, lo, hi) for lo, hi in BUCKETS]
        entry: dict[str, Any] = {
            "mae_mean_over_days": mae, "n": n,
            "buckets": [f"T+{lo}h" if lo == hi else f"T+{lo}..{hi}h" for lo, hi in BUCKETS],
            "mae_by_bucket": [None if m is None else round(m, 4) for m in by_bucket],
            "gain_vs_persistence_pct": [None if m is None or not p else round(100 * (1 - m / p), 1)
                                        for m, p in zip(by_bucket, pers_bucket)],
            "beats_persistence_every_day_every_horizon": all(
                m is None or m < p for r in rows
                for m, p in zip(r["scores"][src]["mae"][name], r["scores"][src]["mae"]["persistence"]))}
        if name in families and "pinball" in rows[0]["scores"][name]:
            entry["pinball"] = {q: _pool(rows, name, lambda s, q=q: s["pinball"][q]) for q in QUANTILES}
            entry["coverage_p10_p90"] = _pool(rows, name, lambda s: s["coverage_p10_p90"])
            entry["brier"] = {ev: {ref: _pool(rows, name, lambda s, ev=ev, ref=ref: s["brier"][ev][ref])
                                   for ref in (name, "climatology", "persistence")} for ev in EVENTS}
            entry["reliability"] = {ev: _reliability([r["scores"][name]["reliability"][ev] for r in rows])
                                    for ev in EVENTS}
            entry[PROFILE_FALLBACK] = {k: _pool(rows, name, lambda s, k=k: s[PROFILE_FALLBACK][k])
                                       for k in ("mae", "coverage_p10_p90")}
        out[name] = entry
    return out


def _reliability(parts: list[dict]) -> dict:
    count = np.sum([p["count"] for p in parts], axis=0)
    pred = np.sum([p["sum_predicted"] for p in parts], axis=0)
    obs = np.sum([p["observed"] for p in parts], axis=0)
    return {"bin_edges": [round(k / evaluate.RELIABILITY_BINS, 2) for k in range(evaluate.RELIABILITY_BINS + 1)],
            "count": count.tolist(),
            "mean_predicted": [round(float(p / c), 4) if c else None for p, c in zip(pred, count)],
            "observed_frequency": [round(float(o / c), 4) if c else None for o, c in zip(obs, count)]}


def _fmt(v: float | None, spec: str = ".3f") -> str:
    return "-" if v is None else format(v, spec)


def _pct(m: float | None, b: float | None) -> str:
    return "-" if m is None or not b else f"{100 * (1 - m / b):+.1f}%"


def _skill(s: dict, fam: str, ev: str, ref: str, lo: int, hi: int) -> str:
    m = _bucket(s["brier"][ev][fam], s["n"], lo, hi)
    r = _bucket(s["brier"][ev][ref], s["n"], lo, hi)
    return "-" if m is None or not r else f"{1 - m / r:+.2f}"


def format_table(bt: dict) -> str:
    """The backtest as text, per product, horizon (bucket) and day, then pooled over the days."""
    fams = bt.get("candidates", [])
    if not fams:
        return "no candidate"
    fam = fams[0]
    rows = bt["days"]
    pooled = {"day": "all days", "day_type": "", "windows": sum(r["windows"] for r in rows)}
    lines = [f"nowcast ({fam}): MAE vs persistence, goals "
             + " / ".join(f"{g} % at T+{h}h" for h, g in zip(NOWCAST, NOWCAST_GOAL_PCT)),
             f"{'day':<11} {'type':<12} {'windows':>7}  " + "  ".join(f"{'T+' + str(h) + 'h model/pers/gain':>28}"
                                                                      for h in NOWCAST)]

    def each(get_scores):
        for r in rows:
            yield r, get_scores(r)

    def nowcast_line(r, s):
        return (f"{r['day']:<11} {r['day_type']:<12} {r['windows']:>7}  " + "  ".join(
            f"{_fmt(s['mae'][fam][h - 1]):>8} {_fmt(s['mae']['persistence'][h - 1]):>8} "
            f"{_pct(s['mae'][fam][h - 1], s['mae']['persistence'][h - 1]):>9}" for h in NOWCAST))

    summary = bt.get("summary", {})
    pooled_scores = None
    if summary:
        pooled_scores = {"n": summary[fam]["n"], "mae": {k: summary[k]["mae_mean_over_days"] for k in [fam, *BASELINES]},
                         "pinball": summary[fam]["pinball"], "coverage_p10_p90": summary[fam]["coverage_p10_p90"],
                         "brier": summary[fam]["brier"]}
    def per_day_and_pooled(day_lines) -> list[str]:
        """The lines of each day, then of the days pooled (when the backtest has a summary)."""
        out = [line for r, s in each(lambda r: r["scores"][fam]) for line in day_lines(r, s)]
        return out + (list(day_lines(pooled, pooled_scores)) if pooled_scores else [])

    lines += per_day_and_pooled(lambda r, s: [nowcast_line(r, s)])
    lines += ["", f"day-ahead ({fam}): MAE by horizon bucket, model vs persistence / same_day_type / profile "
                  "(gain vs the best of the three)",
              f"{'day':<11} {'type':<12} {'windows':>7}  " + "  ".join(f"{f'{lo}-{hi} h':>36}"
                                                                      for lo, hi in DAY_AHEAD_BUCKETS)]

    def day_ahead_line(r, s):
        cells = []
        for lo, hi in DAY_AHEAD_BUCKETS:
            m = _bucket(s["mae"][fam], s["n"], lo, hi)
            b = [_bucket(s["mae"][k], s["n"], lo, hi) for k in BASELINES]
            best = min((v for v in b if v is not None), default=None)
            cells.append(f"{_fmt(m)} {'/'.join(_fmt(v) for v in b)} {_pct(m, best):>7}")
        return f"{r['day']:<11} {r['day_type']:<12} {r['windows']:>7}  " + "  ".join(f"{c:>36}" for c in cells)

    lines += per_day_and_pooled(lambda r, s: [day_ahead_line(r, s)])
    lines += ["", f"distribution ({fam}) by horizon bucket: pinball p10/p50/p90 (bikes), 80 % interval coverage "
                  "(goal 75-85 %), Brier skill of p_empty and p_full vs climatology / persistence",
              f"{'day':<11} {'bucket':>6}  {'pinball p10/p50/p90':>20} {'cover':>6}  {'p_empty skill':>13}  {'p_full skill':>13}"]

    def dist_lines(r, s):
        for lo, hi in ((1, 3), *DAY_AHEAD_BUCKETS[1:]):
            pin = "/".join(_fmt(_bucket(s["pinball"][q], s["n"], lo, hi), ".2f") for q in QUANTILES)
            cov = _bucket(s["coverage_p10_p90"], s["n"], lo, hi)
            yield (f"{r['day']:<11} {f'{lo}-{hi}h':>6}  {pin:>20} {_fmt(None if cov is None else 100 * cov, '.1f'):>5}%  "
                   + "  ".join(f"{_skill(s, fam, ev, 'climatology', lo, hi):>6}/{_skill(s, fam, ev, 'persistence', lo, hi):>6}"
                               for ev in EVENTS))

    lines += per_day_and_pooled(dist_lines)
    fallback = summary.get(fam, {}).get(PROFILE_FALLBACK)
    if fallback:
        n = summary[fam]["n"]

        def fallback_cell(lo, hi):
            cov = _bucket(fallback["coverage_p10_p90"], n, lo, hi)
            return f"{lo}-{hi}h {_fmt(_bucket(fallback['mae'], n, lo, hi))} {_fmt(None if cov is None else 100 * cov, '.1f')}%"

        lines += ["", f"profile fallback ({fam}), what a station whose state is stale is served; here every window "
                      "served as stale: MAE, 80 % interval coverage by horizon bucket",
                  "all days     " + "   ".join(fallback_cell(lo, hi) for lo, hi in ((1, 3), *DAY_AHEAD_BUCKETS[1:]))]
    for sk in bt.get("skipped_days", []):
        lines.append(f"{sk['day']:<11} skipped: {sk['reason']}")
    return "\n".join(lines)
