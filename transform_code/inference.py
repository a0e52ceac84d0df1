"""SageMaker PyTorch handlers: model_fn / input_fn / predict_fn / output_fn.

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
    from .velib_errors import ModelLoadError
    from .velib_lstm import VelibLSTM, to_counts
except ImportError:  # code/ on sys.path, as in the SageMaker container
    import velib_codec as codec
    import velib_features as F
    from velib_errors import ModelLoadError
    from velib_lstm import VelibLSTM, to_counts

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
    __slots__ = ("net", "n_stations", "version")

    def __init__(self, net, n_stations, version):
        self.net = net
        self.n_stations = n_stations
        self.version = version


def model_fn(model_dir):
    config = _read_json(model_dir, CONFIG)
    if config.get("feature_columns") != F.FEATURE_COLUMNS:
        raise ModelLoadError(
            f"{os.path.join(model_dir, CONFIG)}: feature_columns do not match this code's FEATURE_COLUMNS; "
            "package the model with the transform_code it was trained with"
        )
    scaler = _read_json(model_dir, SCALER)
    mappings = _read_json(model_dir, MAPPINGS)
    n_stations = len(mappings["station_index"])
    if n_stations != config["n_stations"]:
        raise ModelLoadError(
            f"{MAPPINGS} lists {n_stations} stations but {CONFIG} says {config['n_stations']}; repackage the model"
        )
    net = VelibLSTM(config, scaler)
    state = torch.load(os.path.join(model_dir, WEIGHTS), map_location="cpu", weights_only=True)
    net.load_state_dict(state)
    net.eval()
    # A process's first forward pass is much slower (lazy kernel set-up): pay it at load,
    # not on a transform job's first mini-batch (bench/transform.py measured 8.6 s vs 5.7 s).
    with torch.inference_mode():
        net(torch.ones(FORWARD_BLOCK_ROWS, len(F.FEATURE_COLUMNS)))
    version = _read_json(model_dir, METADATA).get("version") if os.path.exists(os.path.join(model_dir, METADATA)) else None
    return LoadedModel(net, n_stations, version)


def input_fn(input_data, content_type):
    # Exactly two parameters: the toolkit passes its context as a third one if there is room.
    return codec.decode(input_data, content_type)


def predict_fn(data, model):
    if data.x[:, F.COL["station_index"]].max() > model.n_stations:
        codec.check_station_index(data, model.n_stations)
    x = torch.from_numpy(data.x.astype(np.float32))
    with torch.inference_mode():
        pred = torch.cat([model.net(x[i : i + FORWARD_BLOCK_ROWS]) for i in range(0, len(x), FORWARD_BLOCK_ROWS)])
        counts = to_counts(pred, x[:, F.COL["capacity"]])
    unknown = data.x[:, F.COL["station_index"]] == F.UNKNOWN_STATION_INDEX
    return counts.numpy(), unknown, data


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
