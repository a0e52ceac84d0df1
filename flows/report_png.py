"""The run's PNG, saved beside its manifest (`runs/<run_id>/report.png`).

Left, four stations (the busiest, most bikes moved, and one the model did not know) against
what happened. A day-ahead or nowcast run forecasts from one origin: its P10-P90 band, P50 and
point forecast at each target hour, after the hours before the origin. The evaluation product
forecasts every origin of a day: each horizon is drawn at its target hour (a horizon that lags
the actual curve shows as a shifted line), with the band of the +1 h forecast. The dotted line
is the station's capacity.

Right, from every scored row of the partition: the MAE of the model and of persistence on the
same rows (per horizon, or per horizon bucket for the day-ahead); the reliability diagram of
p_empty and p_full (observed frequency against forecast probability, with counts); a map.
A day-ahead or nowcast run maps p_empty at the morning peak (08:00 Europe/Paris, when riders
most need a bike); the evaluation product maps the change the model forecasts over the 3 hours
after its last origin (blue gains bikes, red loses). The verdict is on top.

Drawn on a matplotlib Figure, not through pyplot: no global figure state, no backend to choose
(a PNG is drawn by Agg), and 0.15 s less to import. The import is at the top: `velibcast run`
imports this module while its temporary Prefect server boots on the other core (flows/prefect_api.py),
so matplotlib (0.6 s) is loaded before the flow starts instead of in the report stage.
"""

from __future__ import annotations

import io
import textwrap
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd
from matplotlib import dates as mdates
from matplotlib.figure import Figure

from velibcast import constants as C
from velibcast import proper_scores as ps
from velibcast import storage as st
from velibcast.config import Config, load_config
from velibcast.datasets.windows import StateGrid, origins_for_range
from velibcast.errors import NotFound
from velibcast.flows import forecasts, manifest, score
from velibcast.flows.products import EVALUATION, Product, product_named
from velibcast.timeutil import PARIS, day_label, iso_minute

HORIZON_COLOURS = {1: "#1f77b4", 2: "#ff7f0e", 3: "#2ca02c"}
BAND_COLOUR = "#1f77b4"
EVENT_COLOURS = {"p_empty": "#d62728", "p_full": "#1f77b4"}
# Hours of actuals drawn before a one-origin run's origin: what the model saw last.
CONTEXT_HOURS = 12
MORNING_PEAK_HOUR = 8  # Europe/Paris: commuters take most bikes then


def report_uri(root: str, run_id: str) -> str:
    return st.join(manifest.run_dir(root, run_id), "report.png")


def _config_of_run(storage: st.Storage, root: str, run_id: str) -> Config:
    """The config the run recorded in its manifest (snapshot root, staleness), else the defaults."""

    try:
        return Config(manifest.read(storage, root, run_id)["parameters"]["config"], f"manifest of {run_id}")
    except (NotFound, KeyError):
        return load_config(None, overrides={"store": {"root": root}})


def _actuals(storage, root, table, run_id, grid_or_actuals):
    """(grid, latest capture, observed hours): from the store as score_run reads it, so the report
    scores the same rows; given actuals are final and every one of their hours observed (None).
    The store's grid starts CONTEXT_HOURS before the first origin, for the station panels."""
    if isinstance(grid_or_actuals, StateGrid):
        return grid_or_actuals, None, None
    if grid_or_actuals is not None:
        return score.grid_from_actuals(grid_or_actuals), None, None
    cfg = _config_of_run(storage, root, run_id)
    scored = score.hours_of(table)
    hours = origins_for_range(scored[0] - timedelta(hours=CONTEXT_HOURS), scored[-1] + score.HOUR)
    captures = score.captures_for(storage, cfg.snapshots_root, hours)
    grid, _ = score.load_grid(storage, cfg, hours)
    return grid, captures.through, captures.observed(grid.hours)


def _activity(grid, code: str) -> float:
    """Bikes moved at a station over the grid: the sum of hourly changes of its state."""
    try:
        i = grid.station_codes.index(code)
    except ValueError:
        return -1.0
    return float(np.nansum(np.abs(np.diff(grid.bikes[i]))))


def pick_stations(df: pd.DataFrame, grid, n_busiest: int = C.REPORT_BUSIEST_STATIONS) -> list[str]:
    """The busiest known stations, then the busiest unknown one; without any unknown
    station, one more known station fills its panel."""
    scored = df[df["reason"].isna()]
    pool = scored if len(scored) else df
    known = sorted(set(pool.loc[~pool["unknown_station"], "station_code"]), key=lambda c: (-_activity(grid, c), c))
    unknown = sorted(set(pool.loc[pool["unknown_station"], "station_code"]), key=lambda c: (-_activity(grid, c), c))
    return known[:n_busiest + (0 if unknown else 1)] + unknown[:1]


def _coordinates(grid, codes: pd.Series, ts) -> tuple[np.ndarray, np.ndarray]:
    """lat, lon of each station on the grid at hour `ts` (a grid may hold them per hour); NaN when unknown."""
    row = {c: i for i, c in enumerate(grid.station_codes)}
    idx = np.array([row.get(c, -1) for c in codes.astype(str)], dtype=np.int64)
    lat, lon = np.full(len(idx), np.nan), np.full(len(idx), np.nan)
    if not len(grid.hours):
        return lat, lon
    j = int(np.clip((pd.Timestamp(ts) - pd.Timestamp(grid.hours[0])) // pd.Timedelta(hours=1), 0, len(grid.hours) - 1))
    ok = idx >= 0
    for out, a in ((lat, np.asarray(grid.lat, dtype=float)), (lon, np.asarray(grid.lon, dtype=float))):
        out[ok] = a[idx[ok], j] if a.ndim == 2 else a[idx[ok]]
    return lat, lon


def change_map(df: pd.DataFrame, grid) -> tuple[pd.DataFrame, pd.Timestamp | None]:
    """Per station at the last origin whose actual is known: lat, lon and forecast(+3 h) - actual
    at the origin (the bikes the model expects the station to gain or lose in the next 3 hours)."""
    h = max(EVALUATION.horizons)
    d = df[df["horizon_h"] == h].reset_index(drop=True)
    now, _, ok = score._lookup(grid, d["station_code"].astype(str).to_numpy(), d["origin_ts"])
    d = d.assign(now=now)[ok]
    if d.empty:
        return pd.DataFrame(columns=["station_code", "lat", "lon", "change"]), None
    origin = d["origin_ts"].max()
    at = d[d["origin_ts"] == origin]
    lat, lon = _coordinates(grid, at["station_code"], origin)
    out = pd.DataFrame({"station_code": at["station_code"].to_numpy(), "lat": lat, "lon": lon,
                        "change": (at["bikes_pred"] - at["now"]).to_numpy()})
    return out[out["lat"].notna() & out["lon"].notna()].reset_index(drop=True), pd.Timestamp(origin)


def peak_target(targets: pd.Series) -> pd.Timestamp:
    """The target hour nearest the morning peak of its own Europe/Paris day: the peak itself
    in a day-ahead run, the hour closest to it in a nowcast."""
    local = pd.to_datetime(targets, utc=True).dt.tz_convert(PARIS)
    peak = local.map(lambda t: t.replace(hour=MORNING_PEAK_HOUR, minute=0, second=0, microsecond=0))
    return pd.Timestamp(local.iloc[int(np.argmin(np.abs((local - peak).to_numpy())))]).tz_convert("UTC")


def peak_map(df: pd.DataFrame, grid) -> tuple[pd.DataFrame, pd.Timestamp | None]:
    """Per station of a one-origin run: lat, lon and p_empty at the target nearest the morning peak."""
    if df.empty:
        return pd.DataFrame(columns=["station_code", "lat", "lon", "p_empty"]), None
    target = peak_target(df["target_ts"].drop_duplicates())
    at = df[df["target_ts"] == target]
    lat, lon = _coordinates(grid, at["station_code"], target)
    out = pd.DataFrame({"station_code": at["station_code"].to_numpy(), "lat": lat, "lon": lon,
                        "p_empty": at["p_empty"].to_numpy(dtype=float)})
    return out[out["lat"].notna() & out["lon"].notna()].reset_index(drop=True), target


def map_title(shown: pd.DataFrame, m: pd.DataFrame, at, forward: bool) -> str:
    if forward:
        h = int((at - shown["origin_ts"].max()) // pd.Timedelta(hours=1))
        return f"P(station empty) at {day_label(at.tz_convert(PARIS))} (+{h} h), {len(m)} stations"
    h = max(EVALUATION.horizons)
    return f"forecast change over the {h} h after {day_label(at.tz_convert(PARIS))}, {len(m)} stations"


def _draw_map(fig, ax, m: pd.DataFrame, title: str, forward: bool) -> None:
    if m.empty:
        ax.text(0.5, 0.5, "no station coordinates for this run", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return
    if forward:
        sc = ax.scatter(m["lon"], m["lat"], c=m["p_empty"], cmap="Reds", vmin=0, vmax=1,
                        s=12, linewidths=0.2, edgecolors="#555555")
        fig.colorbar(sc, ax=ax, shrink=0.85, label="P(empty)")
    else:
        lim = max(1.0, float(np.nanpercentile(np.abs(m["change"]), 98)))
        sc = ax.scatter(m["lon"], m["lat"], c=m["change"].clip(-lim, lim), cmap="RdBu", vmin=-lim, vmax=lim,
                        s=12, linewidths=0.2, edgecolors="#555555")
        fig.colorbar(sc, ax=ax, shrink=0.85, label=f"bikes in {max(EVALUATION.horizons)} h (forecast - now)")
    ax.set_title(title, fontsize=10)
    # Degrees of longitude are shorter than degrees of latitude at Paris' latitude.
    ax.set_aspect(1 / np.cos(np.radians(float(m["lat"].median()))), adjustable="datalim")
    ax.tick_params(labelsize=7.5)
    ax.set_xlabel("longitude", fontsize=8)
    ax.set_ylabel("latitude", fontsize=8)


def reliability_of(df: pd.DataFrame) -> dict[str, list[dict]]:
    """Reliability bins of p_empty and p_full over the scored rows."""
    ok = df[df["reason"].isna()]
    y = ok["actual"].to_numpy()
    events = {"p_empty": ps.empty(y), "p_full": ps.full(y, ok["capacity"].to_numpy())}
    return {p: ps.reliability(ok[p].to_numpy(), e) for p, e in events.items()}


@dataclass
class RunData:
    """What the report shows of one published date: its rows with actuals and the verdict."""

    product: Product
    run: score.RunOf               # the latest run: its rows fill the station panels and the map
    grid: StateGrid
    through: datetime | None       # latest capture read, None when actuals were given
    observed: np.ndarray | None    # per grid hour: a capture lies near it (None: every hour of given actuals)
    df: pd.DataFrame               # every forecast row with its actual and, if unscorable, the reason
    shown: pd.DataFrame            # the rows drawn on the station panels and the map
    summary: list[dict]            # MAE by horizon, model and persistence
    judged: list[dict]             # the same by horizon or bucket, as the product is judged (score.judged)
    reliability: dict[str, list[dict]]
    stations: list[str]            # the panels' stations
    sample: dict                   # whether the targets are inside the model's training span
    verdict: str


def run_data(storage: st.Storage, root: str, run_date: date, grid_or_actuals=None,
             product: str = EVALUATION.name) -> RunData:
    table = forecasts.read_partition(storage, root, product, run_date)
    run = score.latest_run(table)
    grid, through, observed = _actuals(storage, root, table, run.run_id, grid_or_actuals)
    df = score.attach_actuals(table, grid, through, observed)
    p = product_named(product)
    # A one-origin product's date may hold a run an hour: the panels draw the latest; the
    # evaluation product's runs cover different origins of the day, all drawn.
    shown = df[df["run_id"] == run.run_id] if p.as_of else df
    rows = score.summarise(df)
    judged = score.judged(rows, product)
    sample = score.sample_status(df, score.model_training_span(storage, root, run.run_id, run.model_version))
    return RunData(p, run, grid, through, observed, df, shown, score.by_horizon(rows), judged, reliability_of(df),
                   pick_stations(shown, grid), sample, score.verdict(judged, sample, run.model_version))


def _actual_line(ax, data: RunData, hours: pd.Series, span, code: str) -> np.ndarray:
    """The station's actual states over `span` at the hours a capture saw, drawn; the values drawn.
    A state the grid carries forward past the last capture is not what happened."""
    grid = data.grid
    if code not in grid.station_codes:
        return np.array([])
    keep = ((hours >= span[0]) & (hours <= span[1])).to_numpy()
    seen = np.ones(len(hours), bool) if data.observed is None else np.asarray(data.observed, bool)
    line = np.where(seen, grid.bikes[grid.station_codes.index(code)], np.nan)[keep]
    ax.plot(hours[keep].dt.tz_convert(PARIS), line, color="black", lw=2.2, marker="o", ms=3, label="actual", zorder=3)
    return line


def _draw_band(ax, d: pd.DataFrame) -> None:
    """A one-origin run: the P10-P90 band, the P50 and the point forecast at each target."""
    d = d.sort_values("target_ts")
    t = d["target_ts"].dt.tz_convert(PARIS)
    ax.fill_between(t, d["bikes_p10"], d["bikes_p90"], color=BAND_COLOUR, alpha=0.22, lw=0, label="P10-P90")
    ax.plot(t, d["bikes_p50"], color=BAND_COLOUR, lw=1.6, label="P50")
    ax.plot(t, d["bikes_pred"], color="#ff7f0e", lw=1.2, ls="--", label="point forecast")
    ax.axvline(d["origin_ts"].iloc[0].tz_convert(PARIS), color="grey", lw=1, label="origin")


def _draw_horizons_lines(ax, d: pd.DataFrame) -> None:
    """Every origin of a day: each horizon at its target hour, and the band of the +1 h forecast."""
    first = d[d["horizon_h"] == 1].sort_values("target_ts")
    ax.fill_between(first["target_ts"].dt.tz_convert(PARIS), first["bikes_p10"], first["bikes_p90"],
                    color=HORIZON_COLOURS[1], alpha=0.15, lw=0, label="P10-P90 +1 h")
    for h in EVALUATION.horizons:
        dh = d[d["horizon_h"] == h].sort_values("target_ts")
        ax.plot(dh["target_ts"].dt.tz_convert(PARIS), dh["bikes_pred"], color=HORIZON_COLOURS[h],
                lw=1.3, alpha=0.9, label=f"forecast +{h} h")


def _draw_station(ax, data: RunData, d: pd.DataFrame, hours: pd.Series, span, code: str) -> None:
    """One station against what happened, and its capacity line."""
    actual_line = _actual_line(ax, data, hours, span, code)
    if data.product.as_of:
        _draw_band(ax, d)
    else:
        _draw_horizons_lines(ax, d)
    ok = d[d["reason"].isna()]
    scored = (f"MAE all horizons {(ok['bikes_pred'] - ok['actual']).abs().mean():.2f} bikes, {len(ok)} rows scored"
              if len(ok) else "no target observed yet")
    cap = int(d["capacity"].iloc[0]) if len(d) else 0
    tag = " - unknown to the model" if bool(d["unknown_station"].any()) else ""
    ax.set_title(f"station {code} (capacity {cap}){tag}\n{scored}", fontsize=9.5)
    # Every plotted value stays in view: the actual line also shows unscored hours, and a
    # station's count can exceed the capacity of the forecast rows (station 12105 on 2022-05-25).
    top = np.nanmax([*d["bikes_pred"], *d["bikes_p90"], *d["actual"], *actual_line, 1.0])
    ax.set_ylim(-0.5, max(top, cap) * 1.08 + 1)  # the capacity line is always in view
    ax.axhline(cap, color="grey", ls=":", lw=1.2, label="capacity")
    span_h = max(1, int((span[1] - span[0]).total_seconds() // 3600))
    ax.xaxis.set_major_locator(mdates.HourLocator(interval=max(1, span_h // 6), tz=PARIS))
    # Hours only, and the span in words: ConciseDateFormatter labelled the axis with the
    # date of the span's end (the next day for a night), not the run's date.
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M", tz=PARIS))
    a, b = (pd.Timestamp(t).tz_convert(PARIS) for t in span)
    ax.set_xlabel(f"{day_label(a)} to {day_label(b)} (Europe/Paris)", fontsize=8)
    ax.tick_params(labelsize=8)
    ax.set_ylabel("bikes available", fontsize=8.5)
    ax.grid(alpha=0.3)


def _draw_mae(ax, judged: list[dict]) -> None:
    """MAE by horizon or bucket, model against persistence on the same rows."""
    x = np.arange(len(judged))
    model = [r["mae_model"] if r["mae_model"] is not None else np.nan for r in judged]
    pers = [r["mae_persistence"] if r["mae_persistence"] is not None else np.nan for r in judged]
    b1 = ax.bar(x - 0.2, model, 0.4, label="model", color="#1f77b4")
    b2 = ax.bar(x + 0.2, pers, 0.4, label="persistence (value at origin)", color="#9a9a9a")
    for bars in (b1, b2):
        ax.bar_label(bars, fmt="%.2f", fontsize=8, padding=2)
    ax.set_xticks(x, [f"{r['label']}\n{r['scored_rows']} rows" for r in judged], fontsize=8)
    ax.set_ylabel("MAE (bikes)", fontsize=8.5)
    ax.set_title("error by horizon (same rows for both)", fontsize=10)
    ax.legend(fontsize=8, loc="upper left")
    ax.set_ylim(0, np.nanmax([*model, *pers, 0.5]) * 1.3)  # room for the labels and the legend
    if not any(r["scored_rows"] for r in judged):
        ax.text(0.5, 0.5, "no target observed yet", ha="center", va="center", transform=ax.transAxes)
    ax.grid(axis="y", alpha=0.3)


def _draw_reliability(ax, reliability: dict[str, list[dict]]) -> None:
    """Observed frequency against mean forecast probability per bin; each point says its count."""
    ax.plot([0, 1], [0, 1], color="grey", ls=":", lw=1, label="perfectly reliable")
    for p, bins in reliability.items():
        if not bins:
            continue
        x, y = [b["mean_forecast"] for b in bins], [b["observed"] for b in bins]
        n = sum(b["n"] for b in bins)
        ax.plot(x, y, color=EVENT_COLOURS[p], marker="o", ms=4, lw=1.3, label=f"{p} ({n} rows)")
        for b in bins:
            ax.annotate(f"{b['n']}", (b["mean_forecast"], b["observed"]), textcoords="offset points",
                        xytext=(4, -9 if p == "p_full" else 4), fontsize=6.5, color=EVENT_COLOURS[p])
    if not any(reliability.values()):
        ax.text(0.5, 0.5, "no target observed yet", ha="center", va="center", transform=ax.transAxes)
    # margins for the counts written beside the points at 0 and 1
    ax.set_xlim(-0.03, 1.12)
    ax.set_ylim(-0.08, 1.1)
    ax.set_xlabel("forecast probability (bin mean)", fontsize=8)
    ax.set_ylabel("observed frequency", fontsize=8)
    ax.set_title("reliability of p_empty and p_full (numbers: rows per bin)", fontsize=10)
    ax.legend(fontsize=7.5, loc="upper left")
    ax.tick_params(labelsize=7.5)
    ax.grid(alpha=0.3)


def _layout(data: RunData, run_date: date):
    """Four station panels left; MAE, reliability and the map right; the verdict on top."""
    df, shown, grid = data.df, data.shown, data.grid
    forward = data.product.as_of
    fig = Figure(figsize=(17, 12), constrained_layout=True)
    gs = fig.add_gridspec(6, 3, width_ratios=[1, 1, 0.95])
    hours = pd.to_datetime(pd.Series(grid.hours), utc=True) if grid.hours else pd.Series([], dtype="datetime64[ns, UTC]")
    first = shown["origin_ts"].min()
    span = (first - pd.Timedelta(hours=CONTEXT_HOURS) if forward else first, shown["target_ts"].max())
    for k, code in enumerate(data.stations[:4]):
        ax = fig.add_subplot(gs[3 * (k // 2):3 * (k // 2) + 3, k % 2])
        _draw_station(ax, data, shown[shown["station_code"] == code], hours, span, code)
        if k == 0:
            # One legend for the four panels, outside them: inside, it hid the capacity line.
            fig.legend(*ax.get_legend_handles_labels(), loc="outside lower left", ncol=7, fontsize=8.5)
    _draw_mae(fig.add_subplot(gs[0:2, 2]), data.judged)
    _draw_reliability(fig.add_subplot(gs[2:4, 2]), data.reliability)
    points, at = peak_map(shown, grid) if forward else change_map(shown, grid)
    _draw_map(fig, fig.add_subplot(gs[4:6, 2]), points, map_title(shown, points, at, forward) if at is not None else "",
              forward)
    scored = int(df["reason"].isna().sum())
    unscorable = {r: int((df["reason"] == r).sum()) for r in score.REASONS}
    note = ", ".join(f"{r} {n}" for r, n in unscorable.items() if n) or "none"
    through = f"; actuals through {iso_minute(data.through)}" if data.through is not None else ""
    fig.suptitle(f"velibcast {data.product.name} {run_date} (Europe/Paris) - run {data.run.run_id}\n"
                 f"{df['station_code'].nunique()} stations, {len(df)} forecast rows, {scored} scored "
                 f"(unscorable: {note}){through}; times in Europe/Paris\n"
                 + "\n".join(textwrap.wrap("Verdict: " + data.verdict, 170)),
                 fontsize=10.5, color="#b00000" if data.sample["in_training_span"] else "black")
    return fig, unscorable, points, at, scored


def render_run_png(storage: st.Storage, root: str, run_date: date, out_uri: str | None = None,
                   grid_or_actuals=None, product: str = EVALUATION.name) -> dict:
    """Draw the PNG of the product's partition for `run_date`; returns its URI and what it shows.

    `grid_or_actuals`: a StateGrid, or a table (pyarrow, pandas, list of dicts) of hourly
    actuals `station_code, ts, bikes`; None reads them from the snapshot store the run used.
    """
    data = run_data(storage, root, run_date, grid_or_actuals, product)
    fig, unscorable, points, at, scored = _layout(data, run_date)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=C.REPORT_PNG_DPI)
    uri = out_uri or report_uri(root, data.run.run_id)
    storage.write_bytes(uri, buf.getvalue(), content_type="image/png")
    when = at.isoformat() if at is not None else None
    shown_map = ({"target": when, "stations": len(points),
                  "p_empty_by_station": dict(zip(points["station_code"], points["p_empty"].round(3)))}
                 if data.product.as_of else
                 {"origin": when, "stations": len(points),
                  "change_by_station": dict(zip(points["station_code"], points["change"].round(3)))})
    return {"uri": uri, "product": data.product.name, "run_id": data.run.run_id, "stations": data.stations,
            "by_horizon": data.summary, "mae_by": data.judged, "reliability": data.reliability,
            "verdict": data.verdict, **data.sample,
            "scored_rows": scored, "unscorable_by_reason": {r: n for r, n in unscorable.items() if n},
            "map": shown_map}
