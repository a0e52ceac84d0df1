"""SageMaker PyTorch handlers: model_fn / input_fn / predict_fn / output_fn.

Two model families, named by config.json `architecture`: `velib_lstm` (the seed network,
model.pth) and `velib_gbm` (boosted trees in trees.json, evaluated with NumPy).

AWS's PyTorch inference container (sagemaker-inference toolkit) and our own server
(velibcast.batch_transform.server) call these four functions the same way. A MultiRecord
mini-batch is decoded and validated at once and goes through the network in one pass when
it has up to FORWARD_BLOCK_ROWS records, else in blocks of that many rows. Nothing here
unpickles: weights load with weights_only=True, everything else is JSON.
"""

import json
import os

import numpy as np
import torch

try:
    from . import velib_codec as codec
    from . import velib_features as F
    from . import velib_gbm
    from .velib_errors import ModelLoadError
    from .velib_lstm import VelibLSTM
except ImportError:  # code/ on sys.path, as in the SageMaker container
    import velib_codec as codec
    import velib_features as F
    import velib_gbm
    from velib_errors import ModelLoadError
    from velib_lstm import VelibLSTM

WEIGHTS = "model.pth"
CONFIG = "config.json"
SCALER = "scaler.json"
MAPPINGS = "station_mappings.json"
METADATA = "metadata.json"
# Measured (bench/predict.py, 10,000 records, torch 2.13 CPU): 512-row blocks run 1.5-2x
# faster than one 10,000-row pass, whose (n, 24, 128) LSTM activations fall out of cache;
# they also bound activation memory for a 6 MB payload (~50,000 records) to a few MB.
# Lives here, not in velibcast.constants: this folder ships alone.
FORWARD_BLOCK_ROWS = 512


class LoadedModel:
    """`predict(x)`: float rows in FEATURE_COLUMNS order -> bikes (n, 3), unrounded, as float64."""

    __slots__ = ("predict", "n_stations", "version", "architecture", "net")

    def __init__(self, predict, n_stations, version, architecture, net=None):
        self.predict = predict
        self.n_stations = n_stations
        self.version = version
        self.architecture = architecture
        self.net = net  # the torch module of an LSTM model, else None


def model_fn(model_dir):
    config = _read_json(model_dir, CONFIG)
    problem = F.contract_problem(config.get("feature_columns"))
    if problem:
        raise ModelLoadError(f"{os.path.join(model_dir, CONFIG)}: {problem}")
    mappings = _read_json(model_dir, MAPPINGS)
    n_stations = len(mappings["station_index"])
    if n_stations != config["n_stations"]:
        raise ModelLoadError(
            f"{MAPPINGS} lists {n_stations} stations but {CONFIG} says {config['n_stations']}; repackage the model"
        )
    version = _read_json(model_dir, METADATA).get("version") if os.path.exists(os.path.join(model_dir, METADATA)) else None
    arch = config.get("architecture")
    if arch == velib_gbm.ARCHITECTURE:
        if not os.path.exists(os.path.join(model_dir, velib_gbm.TREES)):
            raise ModelLoadError(f"{os.path.join(model_dir, velib_gbm.TREES)}: missing; the model.tar.gz of a "
                                 f"{arch} model must hold it at its root")
        try:
            forecaster = velib_gbm.load(model_dir, config)
        except (OSError, ValueError, KeyError) as e:
            raise ModelLoadError(f"{os.path.join(model_dir, velib_gbm.TREES)}: cannot load ({e}); repackage the model") from None
        return LoadedModel(forecaster.predict, n_stations, version, arch)
    if arch not in (None, "velib_lstm"):
        raise ModelLoadError(f"{os.path.join(model_dir, CONFIG)}: architecture {arch!r} is unknown to this code "
                             f"(velib_lstm, {velib_gbm.ARCHITECTURE}); package the model with its transform_code")
    scaler = _read_json(model_dir, SCALER)
    net = VelibLSTM(config, scaler)
    state = torch.load(os.path.join(model_dir, WEIGHTS), map_location="cpu", weights_only=True)
    net.load_state_dict(state)
    net.eval()

    def predict(x):
        xt = torch.from_numpy(np.asarray(x, dtype=np.float32))
        with torch.inference_mode():
            return torch.cat([net(xt[i : i + FORWARD_BLOCK_ROWS])
                              for i in range(0, len(xt), FORWARD_BLOCK_ROWS)]).numpy().astype(np.float64)

    return LoadedModel(predict, n_stations, version, "velib_lstm", net)


def model_warmup_fn(model_dir, model):
    """The toolkit's hook (sagemaker-inference >= 1.10), once after model_fn and before the first
    request, on the thread that serves it: a CSV request through input_fn -> predict_fn ->
    output_fn. A process's first pass is slower (lazy kernel set-up, first allocations;
    bench/transform.py measured 8.6 s vs 5.7 s for a first forward pass at load against none),
    and a job's first mini-batch would pay it. Two blocks, not one: the first block's buffers
    come from mmap and are given back; the second's are the heap pages later blocks reuse
    (a first 3,000-record request then page-faults 1,000-3,400 times instead of 5,100-7,000).
    It runs the hooks' code, not the hooks: a module that wraps predict_fn (the fault tests
    count its calls) sees requests only."""
    counts, unknown, batch = _predict(codec.decode(_warmup_csv(2 * FORWARD_BLOCK_ROWS), codec.CSV), model)
    codec.encode(counts, unknown, batch, codec.CSV)


def _warmup_csv(n):
    """n valid records: an empty unknown station (index 0, capacity 1) in the service area."""
    lat = sum(codec.SERVICE_AREA_LAT) / 2
    lon = sum(codec.SERVICE_AREA_LON) / 2
    row = ["0"] * F.HISTORY_LEN + ["0", "0", "0", "1", str(F.UNKNOWN_STATION_INDEX), str(lat), str(lon)]
    return (",".join(row) + "\n") * n


def to_counts(pred, capacity):
    """Bikes as served: rounded (half to even), clamped to [0, capacity], int64."""
    return np.minimum(np.clip(np.round(pred), 0.0, None), np.asarray(capacity, dtype=np.float64)[:, None]).astype(np.int64)


def input_fn(input_data, content_type):
    # Exactly two parameters: the toolkit passes its context as a third one if there is room.
    return codec.decode(input_data, content_type)


def predict_fn(data, model):
    return _predict(data, model)


def _predict(data, model):
    if data.x[:, F.COL["station_index"]].max() > model.n_stations:
        codec.check_station_index(data, model.n_stations)
    counts = to_counts(model.predict(data.x), data.x[:, F.COL["capacity"]])
    unknown = data.x[:, F.COL["station_index"]] == F.UNKNOWN_STATION_INDEX
    return counts, unknown, data


def output_fn(prediction, accept):
    counts, unknown, batch = prediction
    return codec.encode(counts, unknown, batch, accept)


def _read_json(model_dir, name):
    path = os.path.join(model_dir, name)
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"{path}: cannot read ({e}); the model.tar.gz must hold {name} at its root") from None
