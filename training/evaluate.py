"""MAE per horizon of a forecaster against the two obvious baselines.

Every forecaster is scored as served: integers clamped to [0, capacity]
(transform_code.inference.to_counts, the handlers' own rounding).
- persistence: the count stays as it is at t;
- seasonal-naive: the count at the same hour yesterday (t+h-24h, inside the 24-hour window).
A forecaster here is a function: FEATURE_COLUMNS rows -> bikes (n, 3), unrounded.
"""

from __future__ import annotations

import json
import tempfile
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import torch

from velibcast.datasets.report import SkipReport
from velibcast.errors import ConfigError
from velibcast.timeutil import iso_minute
from velibcast.training.package import extract
from velibcast.training.registry import in_training_span, training_span
from velibcast.training.samples import stream_samples
from velibcast.transform_code import inference
from velibcast.transform_code import velib_features as F
from velibcast.transform_code.inference import to_counts

_CAP = F.COL["capacity"]
WORKING, NON_WORKING = "working", "non_working"


def served(pred: np.ndarray, capacity: np.ndarray) -> np.ndarray:
    return to_counts(np.asarray(pred, dtype=np.float64), capacity)


def persistence(x: np.ndarray) -> np.ndarray:
    return np.repeat(x[:, F.HISTORY_LEN - 1 : F.HISTORY_LEN], F.HORIZONS, axis=1)


def seasonal_naive(x: np.ndarray) -> np.ndarray:
    # Oldest first: column k holds t-23h+k, so t+h-24h is column h-1.
    return x[:, 0 : F.HORIZONS]


def predict(net, x: np.ndarray, batch: int = 8192) -> np.ndarray:
    """The LSTM's forward pass in batches, as float64 bikes."""
    net.eval()
    out = []
    with torch.inference_mode():
        for i in range(0, len(x), batch):
            out.append(net(torch.from_numpy(np.asarray(x[i : i + batch], dtype=np.float32))).numpy())
    return np.concatenate(out).astype(np.float64) if out else np.empty((0, F.HORIZONS))


def mae_table(forecaster, x: np.ndarray, y: np.ndarray, name: str = "model") -> dict[str, list[float]]:
    cap = x[:, _CAP]
    table = {"persistence": served(persistence(x), cap), "seasonal_naive": served(seasonal_naive(x), cap)}
    if forecaster is not None:
        table = {name: served(forecaster(x), cap), **table}
    return {k: [round(float(v), 4) for v in np.abs(p - y).mean(axis=0)] for k, p in table.items()}


def day_type(d: date) -> str:
    return NON_WORKING if F.is_non_working_day(d) else WORKING


def by_day_type(forecaster, s) -> dict:
    """The table separately for working days and non-working ones (weekends, French public holidays)."""
    flag = s.x[:, F.COL[F.NON_WORKING]] == 1
    out = {}
    for name, mask in ((WORKING, ~flag), (NON_WORKING, flag)):
        if mask.any():
            out[name] = dict(samples=int(mask.sum()), **mae_table(forecaster, s.x[mask], s.y[mask]))
    return out


def evaluate_model(storage, model_uri: str, snapshots_root: str, start, end) -> dict:
    """MAE table of a packaged model on the origins in [start, end] (UTC hours) of a snapshot store,
    overall, by day type and by Europe/Paris day; a day that overlaps the model's training span is
    flagged `in_sample` (its score says nothing about unseen days)."""


    hour = timedelta(hours=1)
    first = start - (F.HISTORY_LEN - 1) * hour
    s, _ = stream_samples(storage, snapshots_root, first, end + F.HORIZONS * hour, SkipReport())
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = extract(storage.read_bytes(model_uri), Path(tmp))
        model = inference.model_fn(str(model_dir))
        mapping = json.loads((model_dir / inference.MAPPINGS).read_text())["station_index"]
        meta = json.loads((model_dir / inference.METADATA).read_text())
    if len(s) == 0 or s.codes is None:  # codes are set whenever a grid gave samples
        raise ConfigError(f"no origin in {iso_minute(start)}..{iso_minute(end)} has 24 h of history "
                         "and 3 h of targets in this store")
    # The model's own station mapping, as the windows stage would send it.
    s.x[:, F.COL["station_index"]] = np.array([mapping.get(c, F.UNKNOWN_STATION_INDEX) for c in s.codes.tolist()],
                                              dtype=np.float32)
    unknown = int((s.x[:, F.COL["station_index"]] == F.UNKNOWN_STATION_INDEX).sum())
    span = training_span(meta)
    days = s.local_days()
    per_day = []
    for d in np.unique(days):
        m = days == d
        day = date.fromordinal(int(d))
        first_o, last_o = s.hours[int(s.origin[m].min())], s.hours[int(s.origin[m].max())]
        per_day.append({"day": day.isoformat(), "day_type": day_type(day), "windows": int(m.sum()),
                        "in_sample": in_training_span(span, first_o + hour, last_o + F.HORIZONS * hour),
                        "mae": mae_table(model.predict, s.x[m], s.y[m])})
    return {"model": model.version, "samples": len(s), "unknown_station_samples": unknown,
            "training_span": None if span is None else [iso_minute(t) for t in span],
            "first_origin": f"{iso_minute(s.hours[int(s.origin.min())])}",
            "last_origin": f"{iso_minute(s.hours[int(s.origin.max())])}",
            "mae": mae_table(model.predict, s.x, s.y), "mae_by_day_type": by_day_type(model.predict, s),
            "by_day": per_day}
