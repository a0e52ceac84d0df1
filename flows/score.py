"""Accuracy of published forecasts once their targets are observed: per run and horizon, the
MAE of the model and of persistence, and the proper scores of the distribution (pinball loss
per quantile, coverage of the P10-P90 interval, Brier scores of p_empty and p_full with their
skill against persistence and against the station's historical frequency of the event for the
target's local hour and day type over the CLIMATOLOGY_DAYS before the forecast; velibcast/proper_scores.py).

The actual of a forecast row is the station's state at `target_ts`, taken from the snapshot
store with the same rule as the windows (datasets/windows.py): the latest observation at
or before the hour, usable when no older than max_staleness, at an hour the store holds a
capture near, and a record observed after the station's state at `origin_ts` (datasets/observed.py,
the rules training and backtests score by). Persistence predicts the state at `origin_ts`. Both are scored on the same rows, so the two MAEs compare.

Scores go to `<root>/accuracy/product=P/run_date=D/part-0.parquet`, one row per run and
horizon (a date of hourly nowcasts holds many runs), one object per product and date replaced whole: rescoring a date (actuals arrived late, the date was rerun) never
duplicates rows, and two dates scored at once never race on a shared object.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from velibcast import constants as C
from velibcast import proper_scores as ps
from velibcast import storage as st
from velibcast.datasets.observed import TOLERANCE, news_since_origin, observed_hours
from velibcast.datasets.report import SkipReport, ValidationPolicy
from velibcast.datasets.snapshots import list_snapshots
from velibcast.datasets.windows import (
    SnapshotSource,
    StateGrid,
    build_state_grid,
    origins_for_range,
    snapshot_span,
)
from velibcast.errors import DataError, NotFound, VelibcastError
from velibcast.flows import forecasts, manifest
from velibcast.flows.products import product_named
from velibcast.timeutil import PARIS, UTC, iso_minute
from velibcast.training.registry import in_training_span, model_uri, read_metadata, training_span
from velibcast.transform_code.velib_features import is_non_working_day

HOUR = timedelta(hours=1)

# Why a forecast row has no score. Each row gets the first reason that applies.
NOT_SETTLED = "actual_not_settled"   # the store holds no capture SCORE_SETTLE_HOURS after the target yet
NO_ACTUAL = "no_actual"              # the station has no state at the target hour (datasets/states.py's rule)
STALE_ACTUAL = "stale_actual"        # its latest record is older than max_staleness
NOT_OBSERVED = "actual_not_observed"  # no capture near the target hour: a state carried forward (datasets.observed)
ORIGIN_RECORD = "actual_is_origin_record"  # the target's state is the origin's record: nothing new since (datasets.observed)
NO_ORIGIN_VALUE = "no_origin_value"  # persistence has no state at the origin
REASONS = (NOT_SETTLED, NO_ACTUAL, STALE_ACTUAL, NOT_OBSERVED, ORIGIN_RECORD, NO_ORIGIN_VALUE)

# Statuses of score_run
NO_FORECASTS = "no_forecasts"
NOT_YET = "not_yet_scorable"
PARTIAL = "partial"
SCORED = "scored"

ACCURACY_SCHEMA = pa.schema([
    pa.field("product", pa.string(), nullable=False),
    pa.field("run_id", pa.string(), nullable=False),
    pa.field("model_version", pa.string(), nullable=False),
    pa.field("horizon_h", pa.int8(), nullable=False),
    pa.field("forecast_rows", pa.int64(), nullable=False),
    pa.field("scored_rows", pa.int64(), nullable=False),
    pa.field("mae_model", pa.float64()),          # null when no row is scored
    pa.field("mae_persistence", pa.float64()),
    pa.field("bias_model", pa.float64()),         # mean(pred - actual): > 0 over-predicts
    *(pa.field(f"pinball_{q}", pa.float64()) for q in ps.QUANTILES),
    pa.field("coverage_p10_p90", pa.float64()),   # share of actuals inside [bikes_p10, bikes_p90]
    pa.field("brier_empty", pa.float64()),
    pa.field("brier_empty_persistence", pa.float64()),  # 1 if empty at the origin, else 0
    pa.field("brier_full", pa.float64()),
    pa.field("brier_full_persistence", pa.float64()),
    pa.field("brier_empty_climatology", pa.float64()),  # the station's frequency at that hour and day type
    pa.field("brier_full_climatology", pa.float64()),
    *(pa.field(f"unscorable_{r}", pa.int64(), nullable=False) for r in REASONS),
    pa.field("status", pa.string(), nullable=False),            # partial | scored
    pa.field("actuals_through", pa.timestamp("us", tz="UTC")),  # latest capture seen in the store
    pa.field("scored_at", pa.timestamp("us", tz="UTC"), nullable=False),
])


def accuracy_uri(root: str, product: str, run_date: date) -> str:
    return st.join(root, C.ACCURACY_PREFIX, f"product={product}", f"run_date={run_date.isoformat()}",
                   forecasts.PART_NAME)


# ---------------------------------------------------------------- actuals
def grid_from_actuals(actuals) -> StateGrid:
    """A StateGrid from a table of hourly actuals (station_code, ts, bikes): every given value is usable."""
    df = actuals.to_pandas() if isinstance(actuals, pa.Table) else pd.DataFrame(actuals)
    missing = {"station_code", "ts", "bikes"} - set(df.columns)
    if missing:
        raise DataError("actuals table", f"lacks column(s) {sorted(missing)}", "give station_code, ts (UTC) and bikes")
    ts = pd.to_datetime(df["ts"], utc=True)
    hours = origins_for_range(ts.min().to_pydatetime(), ts.max().to_pydatetime() + HOUR)
    codes = sorted(df["station_code"].astype(str).unique())
    bikes = np.full((len(codes), len(hours)), np.nan)
    row = {c: i for i, c in enumerate(codes)}
    col = ((ts - hours[0]) // pd.Timedelta(hours=1)).to_numpy()
    bikes[[row[c] for c in df["station_code"].astype(str)], col] = df["bikes"].to_numpy(dtype=float)
    present = ~np.isnan(bikes)
    zeros = np.zeros_like(bikes)
    unknown = np.full_like(bikes, np.nan)  # an actuals table has no coordinates: NaN, not a point at 0, 0
    return StateGrid(hours, codes, bikes, present, present.copy(), present.copy(), present.copy(),
                     zeros.astype(np.int64), unknown, unknown.copy())


def _columns(grid, ts: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """The grid column (hour) of each timestamp, and whether it falls on the grid (which has hours)."""
    cols = ((pd.to_datetime(ts, utc=True) - pd.Timestamp(grid.hours[0])) // HOUR).to_numpy().astype(np.int64)
    return cols, (cols >= 0) & (cols < len(grid.hours))


def _lookup(grid, codes: np.ndarray, ts: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(bikes, present, usable) of the grid at each (station, hour); off-grid counts as absent."""
    n = len(codes)
    bikes, present, usable = np.full(n, np.nan), np.zeros(n, bool), np.zeros(n, bool)
    if not grid.station_codes or not grid.hours:
        return bikes, present, usable
    rows = _rows(grid, codes)
    cols, on_grid = _columns(grid, ts)
    ok = (rows >= 0) & on_grid
    r, c = rows[ok], cols[ok]
    bikes[ok] = grid.bikes[r, c]
    present[ok] = grid.present[r, c]
    usable[ok] = grid.usable[r, c]
    return bikes, present, usable


def _rows(grid, codes: np.ndarray) -> np.ndarray:
    """The grid row of each station code, -1 for a station the grid lacks."""
    row_of = {c: i for i, c in enumerate(grid.station_codes)}
    return np.array([row_of.get(c, -1) for c in codes], dtype=np.int64)


def _news(grid, codes: np.ndarray, origin_ts: pd.Series, target_ts: pd.Series) -> np.ndarray:
    """Per row: the station's state at the target is a record observed after its state at the origin
    (datasets.observed.news_since_origin). A row off the grid is left to the other reasons."""
    out = np.ones(len(codes), dtype=bool)
    if not grid.station_codes or not grid.hours:
        return out
    rows = _rows(grid, codes)
    (o, o_ok), (t, t_ok) = _columns(grid, origin_ts), _columns(grid, target_ts)
    ok = (rows >= 0) & o_ok & t_ok
    out[ok] = news_since_origin(grid, rows[ok], o[ok], t[ok])
    return out


def _observed_at(grid, observed: np.ndarray, ts: pd.Series) -> np.ndarray:
    out = np.zeros(len(ts), dtype=bool)
    if grid.hours:
        cols, ok = _columns(grid, ts)
        out[ok] = np.asarray(observed, bool)[cols[ok]]
    return out


def attach_actuals(table: pa.Table, grid, settled_through: datetime | None,
                   observed: np.ndarray | None = None) -> pd.DataFrame:
    """The forecast rows with `actual`, `persistence` and `reason` (None when scorable).

    `settled_through`: targets after `settled_through - SCORE_SETTLE_HOURS` are not final
    yet; None treats every target as final (actuals given by hand). `observed`: one bool per
    grid hour (datasets.observed); a target hour without a capture near it is not scored,
    as in training and backtests. None takes every hour as observed. Nor is a target whose state
    is the origin's own record, on a grid with observation times.
    """
    df = table.to_pandas()
    codes = df["station_code"].astype(str).to_numpy()
    actual, present, usable = _lookup(grid, codes, df["target_ts"])
    origin, _, origin_ok = _lookup(grid, codes, df["origin_ts"])
    reason = np.full(len(df), None, dtype=object)
    reason[~origin_ok] = NO_ORIGIN_VALUE
    reason[~_news(grid, codes, df["origin_ts"], df["target_ts"])] = ORIGIN_RECORD
    if observed is not None:
        reason[~_observed_at(grid, observed, df["target_ts"])] = NOT_OBSERVED
    reason[present & ~usable] = STALE_ACTUAL
    reason[~present] = NO_ACTUAL
    if settled_through is not None:
        cutoff = pd.Timestamp(settled_through) - pd.Timedelta(hours=C.SCORE_SETTLE_HOURS)
        reason[(pd.to_datetime(df["target_ts"], utc=True) > cutoff).to_numpy()] = NOT_SETTLED
    df["actual"] = np.where(pd.isna(reason), actual, np.nan)
    df["persistence"] = np.where(pd.isna(reason), origin, np.nan)
    df["reason"] = reason
    return df


@dataclass(frozen=True)
class Climatology:
    """The stations' frequencies of empty and full per day type and local hour
    (proper_scores.event_frequency); the last row is a station the history never saw."""

    station_codes: list[str]
    empty: np.ndarray  # (stations + 1, 2, 24)
    full: np.ndarray

    @classmethod
    def of_states(cls, station_codes: list[str], hours: list[datetime], bikes: np.ndarray, capacity: np.ndarray,
                  known: np.ndarray) -> Climatology:
        """The frequencies over the `known` hourly states (stations x hours) of these stations."""
        station, col = np.nonzero(known)
        kind, hour = day_type_and_hour(hours)
        b = np.asarray(bikes, np.float64)[station, col]
        cap = np.broadcast_to(np.asarray(capacity), np.shape(bikes))[station, col]
        n = len(station_codes) + 1  # the last row observes nothing: it takes the network's frequency
        return cls(list(station_codes),
                   ps.event_frequency(station, kind[col], hour[col], ps.empty(b), n),
                   ps.event_frequency(station, kind[col], hour[col], ps.full(b, cap), n))

    def at(self, codes: np.ndarray, target_ts: pd.Series) -> tuple[np.ndarray, np.ndarray]:
        """The frequencies of empty and full at each row's station, target day type and local hour."""
        row_of = {c: i for i, c in enumerate(self.station_codes)}
        rows = np.array([row_of.get(c, len(self.station_codes)) for c in codes], dtype=np.int64)
        kind, hour = day_type_and_hour(pd.to_datetime(target_ts, utc=True).dt.to_pydatetime())
        return self.empty[rows, kind, hour], self.full[rows, kind, hour]


def day_type_and_hour(times) -> tuple[np.ndarray, np.ndarray]:
    """Each time's day type (1 non-working, velib_features' calendar) and hour, in Europe/Paris."""
    local = [t.astimezone(PARIS) for t in times]
    return (np.array([int(is_non_working_day(t.date())) for t in local], dtype=np.int64),
            np.array([t.hour for t in local], dtype=np.int64))


def climatology(storage: st.Storage, cfg, before: datetime, as_of: datetime | None = None) -> Climatology | None:
    """The frequencies over the CLIMATOLOGY_DAYS before `before` (a forecast's first origin, so no
    hour it forecasts is in them), from the states scoring reads: usable, at an hour with a capture
    near it. None when the store holds no station in that span."""
    hours = origins_for_range(before - timedelta(days=ps.CLIMATOLOGY_DAYS), before)
    grid, _ = load_grid(storage, cfg, hours, as_of)
    if not grid.station_codes:
        return None
    observed = captures_for(storage, cfg.snapshots_root, hours, as_of).observed(hours)
    return Climatology.of_states(list(grid.station_codes), hours, grid.bikes, grid.capacity,
                                 np.asarray(grid.usable, bool) & observed[None, :])


def attach_climatology(df: pd.DataFrame, clim: Climatology | None) -> pd.DataFrame:
    """`clim_empty` and `clim_full`: the frequency reference of each row (NaN without a history)."""
    if clim is None:
        df["clim_empty"] = df["clim_full"] = np.nan
    else:
        df["clim_empty"], df["clim_full"] = clim.at(df["station_code"].astype(str).to_numpy(), df["target_ts"])
    return df


def _brier_of_reference(ok: pd.DataFrame, column: str, event: np.ndarray) -> float | None:
    """The Brier score of a reference on the scored rows; None unless it has a value on each of them
    (a skill compares forecasts of the same outcomes)."""
    if column not in ok or not np.isfinite(ok[column].to_numpy(np.float64)).all():
        return None
    return ps.brier(ok[column].to_numpy(), event)


def summarise(df: pd.DataFrame) -> list[dict]:
    """One dict per run and horizon: counts, MAE of the model and of persistence on the same
    rows, and the distribution's proper scores (None where no row is scored)."""
    out = []
    for (run_id, version, h), d in df.groupby(["run_id", "model_version", "horizon_h"], sort=True):
        ok = d[d["reason"].isna()]
        out.append({"run_id": run_id, "model_version": version, "horizon_h": int(h), "forecast_rows": len(d),
                    "scored_rows": len(ok), **scores_of(ok),
                    **{f"unscorable_{r}": int((d["reason"] == r).sum()) for r in REASONS}})
    return out


def scores_of(ok: pd.DataFrame) -> dict:
    """MAE, bias and proper scores of scored rows (actual and persistence known)."""
    if not len(ok):
        return dict.fromkeys(SCORE_COLUMNS)
    y, cap = ok["actual"].to_numpy(), ok["capacity"].to_numpy()
    err = ok["bikes_pred"].to_numpy() - y
    was_empty, was_full = ps.empty(ok["persistence"]), ps.full(ok["persistence"], cap)
    return {
        "mae_model": float(np.abs(err).mean()),
        "mae_persistence": float((ok["persistence"] - ok["actual"]).abs().mean()),
        "bias_model": float(err.mean()),
        **{f"pinball_{q}": ps.pinball(y, ok[q].to_numpy(), tau) for q, tau in ps.QUANTILES.items()},
        "coverage_p10_p90": ps.coverage(y, ok["bikes_p10"].to_numpy(), ok["bikes_p90"].to_numpy()),
        "brier_empty": ps.brier(ok["p_empty"].to_numpy(), ps.empty(y)),
        "brier_empty_persistence": ps.brier(was_empty, ps.empty(y)),
        "brier_full": ps.brier(ok["p_full"].to_numpy(), ps.full(y, cap)),
        "brier_full_persistence": ps.brier(was_full, ps.full(y, cap)),
        "brier_empty_climatology": _brier_of_reference(ok, "clim_empty", ps.empty(y)),
        "brier_full_climatology": _brier_of_reference(ok, "clim_full", ps.full(y, cap)),
    }


# ---------------------------------------------------------------- verdict
def model_training_span(storage: st.Storage, root: str, run_id: str, version: str):
    """(start, end) of the hours the run's model was trained on, from its metadata; None if unknown."""
    try:
        uri = manifest.read(storage, root, run_id)["parameters"]["model_uri"]
    except (NotFound, KeyError):
        uri = model_uri(root, version)
    try:
        return training_span(read_metadata(storage, uri))
    except (NotFound, VelibcastError):
        return None


def sample_status(df: pd.DataFrame, span) -> dict:
    """Whether the scored targets overlap the model's training hours (then the score flatters it)."""
    first = pd.Timestamp(df["target_ts"].min()).to_pydatetime()
    last = pd.Timestamp(df["target_ts"].max()).to_pydatetime()
    return {"in_training_span": in_training_span(span, first, last),
            "training_span": None if span is None else [f"{iso_minute(t)}" for t in span]}


def verdict(rows: list[dict], status: dict, model_version: str) -> str:
    """One sentence a reader can check against the bars: model vs persistence at each pooled
    horizon or bucket (`label`)."""
    scored = [r for r in rows if r["mae_model"] is not None and r["mae_persistence"]]
    if not scored:
        return "no row could be scored yet: no verdict"
    parts = []
    for r in scored:
        gain = 100 * (1 - r["mae_model"] / r["mae_persistence"])
        word = "better" if gain > 0.05 else "worse" if gain < -0.05 else "level"
        parts.append(f"{r['label']} {abs(gain):.1f}% {word} ({r['mae_model']:.2f} vs {r['mae_persistence']:.2f})"
                     if word != "level" else f"{r['label']} level ({r['mae_model']:.2f})")
    gains = [r["mae_model"] < r["mae_persistence"] for r in scored]
    head = ("the model beats persistence at every horizon" if all(gains) else
            "the model loses to persistence at every horizon" if not any(gains) and all(
                r["mae_model"] > r["mae_persistence"] for r in scored) else
            "the model does not beat persistence at every horizon")
    ins = status.get("in_training_span")
    span = status.get("training_span") or ("?", "?")
    where = (f"IN SAMPLE: these targets are inside the training span of {model_version} (hours {span[0]} through {span[1]}), "
             "so this flatters the model" if ins else
             f"out of sample: {model_version} was trained on the hours {span[0]} through {span[1]}" if ins is False else
             f"training span of {model_version} unknown")
    return f"{head}: {'; '.join(parts)} - MAE in bikes, model vs persistence; {where}."


# ---------------------------------------------------------------- scoring a date
SCORE_COLUMNS = ("mae_model", "mae_persistence", "bias_model", *(f"pinball_{q}" for q in ps.QUANTILES),
                 "coverage_p10_p90", "brier_empty", "brier_empty_persistence", "brier_full", "brier_full_persistence",
                 "brier_empty_climatology", "brier_full_climatology")


def _pool(rows: list[dict], span_of) -> list[dict]:
    """Rows (one per run and horizon) pooled per span of horizons (lo, hi): each score is a mean
    over rows, so the pooled one is the runs' and horizons' means weighted by their scored rows."""
    groups: dict[tuple[int, int], list[dict]] = {}
    for r in rows:
        groups.setdefault(span_of(r["horizon_h"]), []).append(r)
    out = []
    for (lo, hi), rs in sorted(groups.items()):
        pooled: dict = {"label": f"T+{lo}h" if lo == hi else f"T+{lo}-{hi}h", "horizons": [lo, hi],
                        "scored_rows": sum(r["scored_rows"] for r in rs),
                        "forecast_rows": sum(r["forecast_rows"] for r in rs)}
        scored = [r for r in rs if r["scored_rows"]]
        for k in SCORE_COLUMNS:
            # over every scored row or none: a skill divides two scores of the same outcomes
            ok = scored and all(r[k] is not None for r in scored)
            pooled[k] = sum(r[k] * r["scored_rows"] for r in scored) / pooled["scored_rows"] if ok else None
        for event in ("empty", "full"):
            b = pooled[f"brier_{event}"]
            for ref, suffix in ((pooled[f"brier_{event}_persistence"], ""),
                                (pooled[f"brier_{event}_climatology"], "_climatology")):
                pooled[f"brier_skill_{event}{suffix}"] = None if b is None or ref is None else ps.skill(b, ref)
        out.append(pooled)
    return out


def by_horizon(rows: list[dict]) -> list[dict]:
    """The rows of a date (one per run and horizon) pooled per horizon."""
    return [{"horizon_h": p["horizons"][0], **p} for p in _pool(rows, lambda h: (h, h))]


def by_bucket(rows: list[dict]) -> list[dict]:
    """The rows of a date pooled per horizon bucket (proper_scores.HORIZON_BUCKETS)."""
    return _pool(rows, ps.bucket_of)


def judged(rows: list[dict], product: str) -> list[dict]:
    """What a product is judged on: each horizon, or each bucket when its horizons reach past
    the first bucket (the day-ahead's 24 horizons make a sentence no one reads)."""
    if max(product_named(product).horizons) > ps.HORIZON_BUCKETS[0][1]:
        return by_bucket(rows)
    return by_horizon(rows)


@dataclass
class RunOf:
    """The run whose rows a report draws: a date published by one run, or the latest of several."""

    run_id: str
    model_version: str


def latest_run(table: pa.Table) -> RunOf:
    last = table.filter(pc.equal(table.column("origin_ts"), pc.max(table.column("origin_ts"))))
    return RunOf(last.column("run_id")[0].as_py(), last.column("model_version")[0].as_py())


@dataclass(frozen=True)
class Captures:
    """The store's captures around the hours a date is scored on, listed once."""

    times: np.ndarray          # POSIX seconds, sorted, from TOLERANCE before the first hour: datasets.observed
    through: datetime | None   # the latest capture from the first hour on: how far the actuals are settled

    def observed(self, hours: list[datetime]) -> np.ndarray:
        """One bool per hour: a capture lies near it (datasets.observed)."""
        return observed_hours(hours, self.times)


def captures_for(storage: st.Storage, snapshots_root: str, hours: list[datetime],
                 as_of: datetime | None = None) -> Captures:
    end = hours[-1] + timedelta(hours=C.SCORE_SETTLE_HOURS + C.CAPTURE_LAG_MAX_HOURS)
    refs = list_snapshots(storage, snapshots_root, hours[0] - TOLERANCE, end, as_of=as_of)
    through = refs[-1].capture_ts if refs and refs[-1].capture_ts >= hours[0] else None
    return Captures(np.array([r.capture_ts.timestamp() for r in refs], dtype=np.float64), through)


def hours_of(table: pa.Table) -> list[datetime]:
    """Every hour scoring reads: the first origin (persistence) through the last target."""
    first = pd.Timestamp(pc.min(table.column("origin_ts")).as_py()).to_pydatetime()
    last = pd.Timestamp(pc.max(table.column("target_ts")).as_py()).to_pydatetime()
    return origins_for_range(first, last + HOUR)


def load_grid(storage: st.Storage, cfg, hours: list[datetime], as_of: datetime | None = None):
    """The hourly states of `hours` by the windows' rule, from captures taken at or before `as_of`."""
    report = SkipReport()
    policy = ValidationPolicy.from_config(cfg)
    staleness = timedelta(hours=cfg.windows.max_staleness_hours)
    lo, hi = snapshot_span(hours, staleness)
    source = SnapshotSource(storage, cfg.snapshots_root, lo, hi, policy, report, as_of=as_of)
    # the hours the stored states settle are read from them (docs/states-dataset.md), the others parsed
    return build_state_grid(storage, cfg.snapshots_root, hours, staleness, policy, report, source,
                            states_root=cfg.root), report


def score_run(storage: st.Storage, cfg, run_date: date, now: datetime | None = None,
              product: str = "evaluation", as_of: datetime | None = None) -> dict:
    """Score a product's forecasts published for `run_date` against the actuals in the snapshot
    store (only captures taken at or before `as_of`, when given).

    Returns a dict whose `status` is one of:
    - `no_forecasts`: nothing is published for the date;
    - `not_yet_scorable`: no target's actual is final yet; nothing is written;
    - `partial`: some targets are final; their scores are written and a later call replaces them;
    - `scored`: every target is final (rows may still lack an actual: see `unscorable_by_reason`).
    """
    root = cfg.root
    where = forecasts.partition_uri(root, product, run_date)
    base: dict = {"product": product, "run_date": run_date.isoformat(), "forecasts": where}
    try:
        table = forecasts.read_partition(storage, root, product, run_date)
    except NotFound:
        return {**base, "status": NO_FORECASTS,
                "message": f"no {product} forecasts published for {run_date} ({where}); nothing to score"}
    run_ids = sorted(set(table.column("run_id").to_pylist()))
    versions = sorted(set(table.column("model_version").to_pylist()))
    base.update({"run_ids": run_ids, "model_versions": versions})
    hours = hours_of(table)
    last_target = hours[-1]
    captures = captures_for(storage, cfg.snapshots_root, hours, as_of)
    through = captures.through
    first_target = pd.Timestamp(pc.min(table.column("target_ts")).as_py()).to_pydatetime()
    settle = timedelta(hours=C.SCORE_SETTLE_HOURS)
    if through is None or through < first_target + settle:
        return {**base, "status": NOT_YET, "actuals_through": through.isoformat() if through else None,
                "message": f"the snapshot store holds no capture {C.SCORE_SETTLE_HOURS} h after the first target "
                           f"{iso_minute(first_target)} yet (latest: {through or 'none'}); score again later"}
    grid, report = load_grid(storage, cfg, hours, as_of)
    df = attach_actuals(table, grid, through, captures.observed(grid.hours))
    attach_climatology(df, climatology(storage, cfg, hours[0], as_of))
    rows = summarise(df)
    status = SCORED if through >= last_target + settle else PARTIAL
    scored_at = (now or datetime.now(UTC)).astimezone(UTC)
    out = pa.Table.from_pylist(
        [{"product": product, **r, "status": status, "actuals_through": through, "scored_at": scored_at}
         for r in rows], schema=ACCURACY_SCHEMA)
    uri = accuracy_uri(root, product, run_date)
    storage.write_bytes(uri, forecasts.to_parquet_bytes(out), content_type="application/vnd.apache.parquet")
    reasons = {r: int((df["reason"] == r).sum()) for r in REASONS}
    latest = latest_run(table)
    sample = sample_status(df, model_training_span(storage, root, latest.run_id, latest.model_version))
    return {
        **base,
        "status": status,
        "accuracy_uri": uri,
        "actuals_through": through.isoformat(),
        "forecast_rows": len(df),
        "scored_rows": int(df["reason"].isna().sum()),
        "unscorable_rows": sum(reasons.values()),
        "unscorable_by_reason": {r: n for r, n in reasons.items() if n},
        "by_horizon": by_horizon(rows),
        "by_bucket": by_bucket(rows),
        "snapshot_report": report.to_dict()["counts"],
        **sample,
        "verdict": verdict(judged(rows, product), sample, ", ".join(versions)),
        "message": f"{status}: {int(df['reason'].isna().sum())} of {len(df)} forecast rows scored"
                   + "".join(f"; {n} not: {r}" for r, n in reasons.items() if n),
    }
