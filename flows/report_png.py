"""The run's PNG, saved beside its manifest (`runs/<run_id>/report.png`).

Left, forecast against actual over the night for the busiest stations (most bikes moved)
and one station the model did not know: each horizon is drawn at its target hour, so a
horizon that lags the actual curve shows as a shifted line. Right, MAE by horizon for the
model and for persistence on the same rows: the model is useful where its bar is lower.
"""

from __future__ import annotations

import io
from datetime import date

import numpy as np
import pandas as pd

from velibcast import constants as C
from velibcast import forecasts, manifest
from velibcast import storage as st
from velibcast.errors import NotFound
from velibcast.flows import score

HORIZON_COLOURS = {1: "#1f77b4", 2: "#ff7f0e", 3: "#2ca02c"}


def report_uri(root: str, run_id: str) -> str:
    return st.join(manifest.run_dir(root, run_id), "report.png")


def _config_of_run(storage: st.Storage, root: str, run_id: str):
    """The config the run recorded in its manifest (snapshot root, staleness), else the defaults."""
    from velibcast.config import Config, load_config

    try:
        return Config(manifest.read(storage, root, run_id)["parameters"]["config"], f"manifest of {run_id}")
    except (NotFound, KeyError):
        return load_config(None, overrides={"store": {"root": root}})


def _actuals(storage, root, table, run_id, grid_or_actuals):
    from velibcast.datasets.windows import StateGrid

    if isinstance(grid_or_actuals, StateGrid):
        return grid_or_actuals, None
    if grid_or_actuals is not None:
        return score.grid_from_actuals(grid_or_actuals), None
    cfg = _config_of_run(storage, root, run_id)
    hours = score.hours_of(table)
    through = score.latest_capture(storage, cfg.snapshots_root, hours[0],
                                   hours[-1] + pd.Timedelta(hours=C.SCORE_SETTLE_HOURS + C.CAPTURE_LAG_MAX_HOURS))
    grid, _ = score.load_grid(storage, cfg, hours)
    return grid, through


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


def render_run_png(storage: st.Storage, root: str, run_date: date, out_uri: str | None = None,
                   grid_or_actuals=None) -> dict:
    """Draw the PNG of the run published for `run_date`; returns its URI and what it shows.

    `grid_or_actuals`: a StateGrid, or a table (pyarrow, pandas, list of dicts) of hourly
    actuals `station_code, ts, bikes`; None reads them from the snapshot store the run used.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    from velibcast.flows.run_identity import PARIS

    table = forecasts.read_partition(storage, root, run_date)
    run = score._run_of(table, forecasts.partition_uri(root, run_date))
    grid, through = _actuals(storage, root, table, run.run_id, grid_or_actuals)
    df = score.attach_actuals(table, grid, through)
    summary = score.summarise(df)
    stations = pick_stations(df, grid)

    fig = plt.figure(figsize=(14, 8), constrained_layout=True)
    gs = fig.add_gridspec(2, 3, width_ratios=[1, 1, 0.9])
    hours = pd.to_datetime(pd.Series(grid.hours), utc=True) if grid.hours else pd.Series([], dtype="datetime64[ns, UTC]")
    span = (df["origin_ts"].min(), df["target_ts"].max())
    for k, code in enumerate(stations[:4]):
        ax = fig.add_subplot(gs[k // 2, k % 2])
        d = df[df["station_code"] == code]
        if code in grid.station_codes:
            i = grid.station_codes.index(code)
            keep = ((hours >= span[0]) & (hours <= span[1])).to_numpy()
            ax.plot(hours[keep].dt.tz_convert(PARIS), grid.bikes[i][keep], color="black", lw=2.2,
                    marker="o", ms=3, label="actual", zorder=3)
        for h in forecasts.HORIZONS:
            dh = d[d["horizon_h"] == h].sort_values("target_ts")
            ax.plot(dh["target_ts"].dt.tz_convert(PARIS), dh["bikes_pred"], color=HORIZON_COLOURS[h],
                    lw=1.3, alpha=0.9, label=f"forecast +{h} h")
        ok = d[d["reason"].isna()]
        mae = (ok["bikes_pred"] - ok["actual"]).abs().mean() if len(ok) else float("nan")
        cap = int(d["capacity"].iloc[0]) if len(d) else 0
        tag = " - unknown to the model" if bool(d["unknown_station"].any()) else ""
        ax.set_title(f"station {code} (capacity {cap}){tag}\nMAE all horizons {mae:.2f} bikes, {len(ok)} rows scored",
                     fontsize=9.5)
        top = np.nanmax([*d["bikes_pred"], *d["actual"], 1.0])
        ax.set_ylim(-0.5, top * 1.15 + 1)
        if cap <= top * 1.15 + 1:
            ax.axhline(cap, color="grey", ls=":", lw=1)
        span_h = max(1, int((span[1] - span[0]).total_seconds() // 3600))
        locator = mdates.HourLocator(interval=max(1, span_h // 6), tz=PARIS)
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, tz=PARIS))
        ax.tick_params(labelsize=8)
        ax.set_ylabel("bikes available", fontsize=8.5)
        ax.grid(alpha=0.3)
        if k == 0:
            ax.legend(fontsize=7.5, ncol=2, loc="upper right", framealpha=0.85)

    ax = fig.add_subplot(gs[:, 2])
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
    if through is not None:
        note += f"\nactuals through {through:%Y-%m-%d %H:%M} UTC"
    ax.text(0.0, -0.16, note, transform=ax.transAxes, fontsize=8, va="top")
    scored = int(df["reason"].isna().sum())
    fig.suptitle(f"velibcast {run_date} (Europe/Paris) - run {run.run_id}\n"
                 f"{df['station_code'].nunique()} stations, {len(df)} forecast rows, {scored} scored; "
                 f"times in Europe/Paris", fontsize=11)

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=C.REPORT_PNG_DPI)
    plt.close(fig)
    uri = out_uri or report_uri(root, run.run_id)
    storage.write_bytes(uri, buf.getvalue(), content_type="image/png")
    return {"uri": uri, "run_id": run.run_id, "stations": stations, "by_horizon": summary,
            "scored_rows": scored, "unscorable_by_reason": {r: n for r, n in unscorable.items() if n}}
