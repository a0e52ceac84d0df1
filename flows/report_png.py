"""The run's PNG, saved beside its manifest (`runs/<run_id>/report.png`).

Left, forecast against actual over the night for the busiest stations (most bikes moved)
and one station the model did not know: each horizon is drawn at its target hour, so a
horizon that lags the actual curve shows as a shifted line; the dotted line is the station's
capacity. Right, MAE by horizon for the model and for persistence on the same rows: the model
is useful where its bar is lower; below it, a map of the stations coloured by the change the
model forecasts over the 3 hours after the run's last origin (blue gains bikes, red loses).

Drawn on a matplotlib Figure, not through pyplot: no global figure state, no backend to choose
(a PNG is drawn by Agg), and 0.15 s less to import. The import is at the top: `velibcast run`
imports this module while its temporary Prefect server boots on the other core (flows/prefect_api.py),
so matplotlib (0.6 s) is loaded before the flow starts instead of in the report stage.
"""

from __future__ import annotations

import io
import textwrap
from dataclasses import dataclass
from datetime import date, datetime

import numpy as np
import pandas as pd
from matplotlib import dates as mdates
from matplotlib.figure import Figure

from velibcast import constants as C
from velibcast import storage as st
from velibcast.config import Config, load_config
from velibcast.datasets.windows import StateGrid
from velibcast.errors import NotFound
from velibcast.flows import forecasts, manifest, score
from velibcast.flows.products import EVALUATION
from velibcast.timeutil import PARIS, day_label, iso_minute

HORIZON_COLOURS = {1: "#1f77b4", 2: "#ff7f0e", 3: "#2ca02c"}


def report_uri(root: str, run_id: str) -> str:
    return st.join(manifest.run_dir(root, run_id), "report.png")


def _config_of_run(storage: st.Storage, root: str, run_id: str):
    """The config the run recorded in its manifest (snapshot root, staleness), else the defaults."""

    try:
        return Config(manifest.read(storage, root, run_id)["parameters"]["config"], f"manifest of {run_id}")
    except (NotFound, KeyError):
        return load_config(None, overrides={"store": {"root": root}})


def _actuals(storage, root, table, run_id, grid_or_actuals):
    """(grid, latest capture, observed hours): from the store as score_run reads it, so the report
    scores the same rows; given actuals are final and every one of their hours observed (None)."""
    if isinstance(grid_or_actuals, StateGrid):
        return grid_or_actuals, None, None
    if grid_or_actuals is not None:
        return score.grid_from_actuals(grid_or_actuals), None, None
    cfg = _config_of_run(storage, root, run_id)
    hours = score.hours_of(table)
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
    idx = at["station_code"].astype(str).map({c: i for i, c in enumerate(grid.station_codes)}).to_numpy(dtype=int)
    j = int((pd.Timestamp(origin) - pd.Timestamp(grid.hours[0])) // pd.Timedelta(hours=1))
    lat, lon = (np.asarray(a, dtype=float) for a in (grid.lat, grid.lon))
    lat, lon = (a[idx, j] if a.ndim == 2 else a[idx] for a in (lat, lon))  # the grid holds them per hour
    out = pd.DataFrame({"station_code": at["station_code"].to_numpy(), "lat": lat, "lon": lon,
                        "change": (at["bikes_pred"] - at["now"]).to_numpy()})
    return out[out["lat"].notna() & out["lon"].notna()].reset_index(drop=True), pd.Timestamp(origin)


def _draw_map(fig, ax, m: pd.DataFrame, origin, paris) -> None:
    h = max(EVALUATION.horizons)
    if m.empty:
        ax.text(0.5, 0.5, "no station coordinates for this night", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return
    lim = max(1.0, float(np.nanpercentile(np.abs(m["change"]), 98)))
    sc = ax.scatter(m["lon"], m["lat"], c=m["change"].clip(-lim, lim), cmap="RdBu", vmin=-lim, vmax=lim,
                    s=12, linewidths=0.2, edgecolors="#555555")
    # Degrees of longitude are shorter than degrees of latitude at Paris' latitude.
    ax.set_aspect(1 / np.cos(np.radians(float(m["lat"].median()))), adjustable="datalim")
    fig.colorbar(sc, ax=ax, shrink=0.85, label=f"bikes in {h} h (forecast - now)")
    ax.set_title(f"forecast change over the {h} h after {day_label(origin.tz_convert(paris))}\n"
                 f"{len(m)} stations (Europe/Paris)", fontsize=10)
    ax.tick_params(labelsize=7.5)
    ax.set_xlabel("longitude", fontsize=8)
    ax.set_ylabel("latitude", fontsize=8)


@dataclass
class RunData:
    """What the report shows of one published date: its rows with actuals and the verdict."""

    run: score.RunOf  # its run_id and model_version
    grid: StateGrid
    through: datetime | None       # latest capture read, None when actuals were given
    df: pd.DataFrame               # forecast rows with their actual and, if unscorable, the reason
    summary: list[dict]            # MAE by horizon, model and persistence
    stations: list[str]            # the panels' stations
    sample: dict                   # whether the targets are inside the model's training span
    verdict: str


def run_data(storage: st.Storage, root: str, run_date: date, grid_or_actuals=None,
             product: str = "evaluation") -> RunData:
    table = forecasts.read_partition(storage, root, product, run_date)
    run = score.latest_run(table)
    grid, through, observed = _actuals(storage, root, table, run.run_id, grid_or_actuals)
    df = score.attach_actuals(table, grid, through, observed)
    summary = score.by_horizon(score.summarise(df))
    sample = score.sample_status(df, score.model_training_span(storage, root, run.run_id, run.model_version))
    return RunData(run, grid, through, df, summary, pick_stations(df, grid), sample,
                   score.verdict(summary, sample, run.model_version))


def _draw_station(ax, d: pd.DataFrame, grid: StateGrid, hours: pd.Series, span, code: str) -> None:
    """One station: the actual curve, each horizon at its target hour, the capacity line."""
    actual_line = np.array([])
    if code in grid.station_codes:
        i = grid.station_codes.index(code)
        keep = ((hours >= span[0]) & (hours <= span[1])).to_numpy()
        actual_line = grid.bikes[i][keep]
        ax.plot(hours[keep].dt.tz_convert(PARIS), actual_line, color="black", lw=2.2,
                marker="o", ms=3, label="actual", zorder=3)
    for h in EVALUATION.horizons:
        dh = d[d["horizon_h"] == h].sort_values("target_ts")
        ax.plot(dh["target_ts"].dt.tz_convert(PARIS), dh["bikes_pred"], color=HORIZON_COLOURS[h],
                lw=1.3, alpha=0.9, label=f"forecast +{h} h")
    ok = d[d["reason"].isna()]
    mae = (ok["bikes_pred"] - ok["actual"]).abs().mean() if len(ok) else float("nan")
    cap = int(d["capacity"].iloc[0]) if len(d) else 0
    tag = " - unknown to the model" if bool(d["unknown_station"].any()) else ""
    ax.set_title(f"station {code} (capacity {cap}){tag}\nMAE all horizons {mae:.2f} bikes, {len(ok)} rows scored",
                 fontsize=9.5)
    # Every plotted value stays in view: the actual line also shows unscored hours, and a
    # station's count can exceed the capacity of the forecast rows (station 12105 on 2022-05-25).
    top = np.nanmax([*d["bikes_pred"], *d["actual"], *actual_line, 1.0])
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


def _draw_horizons(ax, data: RunData) -> dict[str, int]:
    """MAE by horizon, model against persistence on the same rows; returns the unscorable rows by reason."""
    summary, df = data.summary, data.df
    x = np.arange(len(summary))
    model = [r["mae_model"] if r["mae_model"] is not None else np.nan for r in summary]
    pers = [r["mae_persistence"] if r["mae_persistence"] is not None else np.nan for r in summary]
    b1 = ax.bar(x - 0.2, model, 0.4, label="model", color="#1f77b4")
    b2 = ax.bar(x + 0.2, pers, 0.4, label="persistence (value at origin)", color="#9a9a9a")
    for bars in (b1, b2):
        ax.bar_label(bars, fmt="%.2f", fontsize=8.5, padding=2)
    ax.set_xticks(x, [f"+{r['horizon_h']} h\n{r['scored_rows']} rows" for r in summary])
    ax.set_ylabel("MAE (bikes)")
    ax.set_title("error by horizon (same rows for both)", fontsize=10)
    ax.legend(fontsize=8.5, loc="upper left")
    ax.grid(axis="y", alpha=0.3)
    unscorable = {r: int((df["reason"] == r).sum()) for r in score.REASONS}
    note = "unscorable rows: " + (", ".join(f"{r} {n}" for r, n in unscorable.items() if n) or "none")
    if data.through is not None:
        note += f"\nactuals through {iso_minute(data.through)}"
    ax.text(0.0, -0.12, note, transform=ax.transAxes, fontsize=8, va="top")
    return unscorable


def _layout(data: RunData, run_date: date):
    """Four station panels left, MAE by horizon and the change map right, the verdict on top."""
    df, grid = data.df, data.grid
    fig = Figure(figsize=(15, 9.5), constrained_layout=True)
    gs = fig.add_gridspec(2, 3, width_ratios=[1, 1, 0.9])
    hours = pd.to_datetime(pd.Series(grid.hours), utc=True) if grid.hours else pd.Series([], dtype="datetime64[ns, UTC]")
    span = (df["origin_ts"].min(), df["target_ts"].max())
    for k, code in enumerate(data.stations[:4]):
        ax = fig.add_subplot(gs[k // 2, k % 2])
        _draw_station(ax, df[df["station_code"] == code], grid, hours, span, code)
        if k == 0:
            # One legend for the four panels, outside them: inside, it hid the capacity line.
            fig.legend(*ax.get_legend_handles_labels(), loc="outside lower left", ncol=5, fontsize=8.5)
    unscorable = _draw_horizons(fig.add_subplot(gs[0, 2]), data)
    changes, map_origin = change_map(df, grid)
    _draw_map(fig, fig.add_subplot(gs[1, 2]), changes, map_origin, PARIS)
    scored = int(df["reason"].isna().sum())
    fig.suptitle(f"velibcast {run_date} (Europe/Paris) - run {data.run.run_id}\n"
                 f"{df['station_code'].nunique()} stations, {len(df)} forecast rows, {scored} scored; "
                 f"times in Europe/Paris\n" + "\n".join(textwrap.wrap("Verdict: " + data.verdict, 150)),
                 fontsize=10.5, color="#b00000" if data.sample["in_training_span"] else "black")
    return fig, unscorable, changes, map_origin, scored


def render_run_png(storage: st.Storage, root: str, run_date: date, out_uri: str | None = None,
                   grid_or_actuals=None) -> dict:
    """Draw the PNG of the run published for `run_date`; returns its URI and what it shows.

    `grid_or_actuals`: a StateGrid, or a table (pyarrow, pandas, list of dicts) of hourly
    actuals `station_code, ts, bikes`; None reads them from the snapshot store the run used.
    """
    data = run_data(storage, root, run_date, grid_or_actuals)
    fig, unscorable, changes, map_origin, scored = _layout(data, run_date)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=C.REPORT_PNG_DPI)
    uri = out_uri or report_uri(root, data.run.run_id)
    storage.write_bytes(uri, buf.getvalue(), content_type="image/png")
    return {"uri": uri, "run_id": data.run.run_id, "stations": data.stations, "by_horizon": data.summary,
            "verdict": data.verdict, **data.sample,
            "scored_rows": scored, "unscorable_by_reason": {r: n for r, n in unscorable.items() if n},
            "map": {"origin": map_origin.isoformat() if map_origin is not None else None, "stations": len(changes),
                    "change_by_station": dict(zip(changes["station_code"], changes["change"].round(3)))}}
