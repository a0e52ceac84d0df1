"""The seed architecture: LSTM 128 -> LSTM 64 over the 24 history values, concatenated with
static features -> dense 32 -> 3 outputs (bikes at T+1h, T+2h, T+3h).

Design choices, each for a reason the data gives:
- History enters as a fraction of capacity, so a 12-dock and a 60-dock station share one
  scale and the LSTM learns occupancy dynamics rather than station size.
- The head predicts the change from the last observed fraction. Persistence is then the
  zero output, so the model starts from the strongest baseline and learns corrections.
- The station enters through an embedding, not the scaled index: station indices are
  arbitrary labels, and a scaled index would make stations 41 and 42 "close" for no reason.
  Row 0 (UNKNOWN_STATION_INDEX) is trained on randomly masked stations (station dropout),
  so an unknown station gets a learnt "average station" vector instead of an untrained one.
- hour and day_of_week are cyclic (sin, cos); capacity, lat, lon are standardised with
  the training scaler (scaler.json), held as buffers so the state dict carries weights only.
- config["persistence_on_non_working_days"]: when training saw no non_working_day=1 sample (the
  first three bundled days are Monday..Wednesday), the model has never learnt weekend or holiday
  dynamics, and applying weekday dynamics to them is worse than persistence (measured on
  Ascension 2022-05-26, see the training metrics). Those records then get persistence.
"""

import math

import torch
from torch import nn

try:
    from . import velib_features as F
except ImportError:  # code/ on sys.path, as in the SageMaker container
    import velib_features as F

DEFAULT_CONFIG = {
    "architecture": "velib_lstm",
    "history_len": F.HISTORY_LEN,
    "lstm1_units": 128,
    "lstm2_units": 64,
    "dense_units": 32,
    "station_embedding_dim": 8,
    "horizons": F.HORIZONS,
}

_I_HOUR = F.COL["hour"]
_I_DOW = F.COL["day_of_week"]
_I_WEEKEND = F.COL[F.NON_WORKING]
_I_CAP = F.COL["capacity"]
_I_STATION = F.COL["station_index"]
_I_LAT = F.COL["lat"]
_I_LON = F.COL["lon"]
_N_STATIC = 8  # sin/cos hour, sin/cos dow, non_working_day, capacity, lat, lon


class VelibLSTM(nn.Module):
    """Takes raw rows in FEATURE_COLUMNS order (float32, shape (n, 31)); returns bikes (n, 3), unrounded."""

    # The scaler's buffers (register_buffer below), declared so type checkers see tensors.
    capacity_mean: torch.Tensor
    capacity_std: torch.Tensor
    lat_mean: torch.Tensor
    lat_std: torch.Tensor
    lon_mean: torch.Tensor
    lon_std: torch.Tensor

    def __init__(self, config: dict, scaler: dict):
        super().__init__()
        self.config = dict(config)
        n_stations = int(config["n_stations"])
        emb = int(config["station_embedding_dim"])
        self.lstm1 = nn.LSTM(1, config["lstm1_units"], batch_first=True)
        self.lstm2 = nn.LSTM(config["lstm1_units"], config["lstm2_units"], batch_first=True)
        self.station_embedding = nn.Embedding(n_stations + 1, emb)
        self.dense = nn.Linear(config["lstm2_units"] + _N_STATIC + emb, config["dense_units"])
        self.out = nn.Linear(config["dense_units"], config["horizons"])
        nn.init.zeros_(self.out.weight)  # start exactly at persistence
        nn.init.zeros_(self.out.bias)
        self.n_stations = n_stations
        self.persist_non_working = bool(config.get("persistence_on_non_working_days", False))
        # Not persistent: the scaler lives in scaler.json, the state dict holds weights only.
        for name in ("capacity", "lat", "lon"):
            self.register_buffer(f"{name}_mean", torch.tensor(float(scaler[name]["mean"])), persistent=False)
            self.register_buffer(f"{name}_std", torch.tensor(float(scaler[name]["std"])), persistent=False)

    def forward(self, x: torch.Tensor, station_index: torch.Tensor | None = None) -> torch.Tensor:
        """`station_index` overrides column station_index (training masks stations with it)."""
        cap = x[:, _I_CAP]
        safe_cap = cap.clamp(min=1.0)
        hist = (x[:, : F.HISTORY_LEN] / safe_cap[:, None]).clamp(0.0, 1.5)
        h1, _ = self.lstm1(hist.unsqueeze(-1))
        h2, _ = self.lstm2(h1)
        last = h2[:, -1, :]
        hour = x[:, _I_HOUR] * (2 * math.pi / 24)
        dow = x[:, _I_DOW] * (2 * math.pi / 7)
        static = torch.stack(
            [
                torch.sin(hour), torch.cos(hour), torch.sin(dow), torch.cos(dow),
                x[:, _I_WEEKEND],
                (cap - self.capacity_mean) / self.capacity_std,
                (x[:, _I_LAT] - self.lat_mean) / self.lat_std,
                (x[:, _I_LON] - self.lon_mean) / self.lon_std,
            ],
            dim=1,
        )
        if station_index is None:
            station_index = x[:, _I_STATION].long()
        z = torch.cat([last, static, self.station_embedding(station_index)], dim=1)
        delta = self.out(torch.relu(self.dense(z)))
        if self.persist_non_working:
            delta = delta * (1.0 - x[:, _I_WEEKEND : _I_WEEKEND + 1])
        return (hist[:, -1:] + delta) * safe_cap[:, None]


def to_counts(pred: torch.Tensor, capacity: torch.Tensor) -> torch.Tensor:
    """Bikes as served: rounded, clamped to [0, capacity], int64."""
    return torch.minimum(pred.round().clamp(min=0.0), capacity[:, None]).to(torch.int64)
