"""MAE per horizon of the served model against the two obvious baselines.

Every forecaster is scored as served: integers clamped to [0, capacity].
- persistence: the count stays as it is at t;
- seasonal-naive: the count at the same hour yesterday (t+h-24h, inside the 24-hour window).
"""

from __future__ import annotations

import numpy as np
import torch

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
