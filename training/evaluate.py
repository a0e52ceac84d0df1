"""MAE per horizon of the served model against the two obvious baselines.

Every forecaster is scored as served: integers clamped to [0, capacity].
- persistence: the count stays as it is at t;
- seasonal-naive: the count at the same hour yesterday (t+h-24h, inside the 24-hour window).
"""

from __future__ import annotations

import numpy as np
import torch

from velibcast.errors import ConfigError
from velibcast.transform_code import velib_features as F
from velibcast.transform_code.velib_lstm import to_counts

_CAP = F.COL["capacity"]


def served(pred: np.ndarray, capacity: np.ndarray) -> np.ndarray:
    return to_counts(torch.as_tensor(pred, dtype=torch.float32), torch.as_tensor(capacity, dtype=torch.float32)).numpy()


def persistence(x: np.ndarray) -> np.ndarray:
    return np.repeat(x[:, F.HISTORY_LEN - 1 : F.HISTORY_LEN], F.HORIZONS, axis=1)


def seasonal_naive(x: np.ndarray) -> np.ndarray:
    # Oldest first: column k holds t-23h+k, so t+h-24h is column h-1.
    return x[:, 0 : F.HORIZONS]


def predict(net, x: np.ndarray, batch: int = 8192) -> np.ndarray:
    net.eval()
    out = []
    with torch.inference_mode():
        for i in range(0, len(x), batch):
            out.append(net(torch.from_numpy(x[i : i + batch])).numpy())
    return np.concatenate(out) if out else np.empty((0, F.HORIZONS), np.float32)


def mae_table(net, x: np.ndarray, y: np.ndarray) -> dict[str, list[float]]:
    cap = x[:, _CAP]
    table = {
        "model": served(predict(net, x), cap),
        "persistence": served(persistence(x), cap),
        "seasonal_naive": served(seasonal_naive(x), cap),
    }
    return {name: [round(float(v), 4) for v in np.abs(p - y).mean(axis=0)] for name, p in table.items()}


def by_day_type(net, s) -> dict:
    """The table separately for working days and non-working ones (weekends, French public holidays):
    a model trained on weekdays only should not be judged on a holiday, nor hide it."""
    from velibcast.training.samples import non_working

    flag = np.array([non_working(s.hours[int(o)]) for o in s.origin], dtype=bool)
    out = {}
    for name, mask in (("working", ~flag), ("non_working", flag)):
        if mask.any():
            out[name] = dict(samples=int(mask.sum()), **mae_table(net, s.x[mask], s.y[mask]))
    return out


def evaluate_model(storage, model_uri: str, snapshots_root: str, start, end) -> dict:
    """MAE table of a packaged model on the origins in [start, end] (UTC hours) of a snapshot store,
    with the model's own station mapping: how `velibcast evaluate` checks days the model has not seen."""
    import json
    import tempfile
    from pathlib import Path

    from velibcast.datasets.report import SkipReport, ValidationPolicy
    from velibcast.training.package import extract
    from velibcast.training.samples import grid_for_samples, samples_from_grid
    from velibcast.transform_code import inference

    report = SkipReport()
    grid = grid_for_samples(storage, snapshots_root, start, end, report, ValidationPolicy())
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = extract(storage.read_bytes(model_uri), Path(tmp))
        model = inference.model_fn(str(model_dir))
        mapping = json.loads((model_dir / inference.MAPPINGS).read_text())["station_index"]
    s = samples_from_grid(grid, mapping)
    if len(s) == 0:
        raise ConfigError(f"no origin in {start:%Y-%m-%dT%H:%MZ}..{end:%Y-%m-%dT%H:%MZ} has 24 h of history "
                         "and 3 h of targets in this store")
    unknown = int((s.x[:, F.COL["station_index"]] == F.UNKNOWN_STATION_INDEX).sum())
    return {"model": model.version, "samples": len(s), "unknown_station_samples": unknown,
            "first_origin": f"{s.hours[int(s.origin.min())]:%Y-%m-%dT%H:%MZ}",
            "last_origin": f"{s.hours[int(s.origin.max())]:%Y-%m-%dT%H:%MZ}",
            "mae": mae_table(model.net, s.x, s.y), "mae_by_day_type": by_day_type(model.net, s)}
