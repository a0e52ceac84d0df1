"""SageMaker PyTorch handlers: model_fn / input_fn / predict_fn / output_fn.

The model family is named by config.json `architecture`: `velib_gbm` (boosted trees in
trees.json, evaluated with NumPy). A family predicts bikes per horizon; the predictive
distribution around it (velib_distribution, distribution.json) is the same for every family.

AWS's PyTorch inference container (sagemaker-inference toolkit) and our own server
(velibcast.batch_transform.server) call these four functions the same way. A MultiRecord
mini-batch is decoded and validated at once and predicted in blocks of FORWARD_BLOCK_ROWS
records. Nothing here unpickles: everything is JSON.
"""

import json
import os

import numpy as np

try:
    from . import velib_codec as codec
    from . import velib_distribution, velib_gbm
    from . import velib_features as F
    from .velib_errors import ModelLoadError
except ImportError:  # code/ on sys.path, as in the SageMaker container
    import velib_codec as codec
    import velib_distribution
    import velib_features as F
    import velib_gbm
    from velib_errors import ModelLoadError

CONFIG = "config.json"
MAPPINGS = "station_mappings.json"
METADATA = "metadata.json"
# The distribution places LEVELS outcomes around each of a record's MAX_HORIZON forecasts:
# 512 records are ~10 MB of them, so a 6 MB payload (~50,000 records) never holds them all.
# Lives here, not in velibcast.constants: this folder ships alone.
FORWARD_BLOCK_ROWS = 512


class LoadedModel:
    """`predict(x)`: float rows in FEATURE_COLUMNS order -> bikes (n, MAX_HORIZON), unrounded;
    `fallback(x)` -> the FALLBACKS code of what serves each horizon (n, MAX_HORIZON);
    `climatology(x)` -> the station's frequency of empty and full at each target (n, MAX_HORIZON, 2);
    `quantities(x)` -> the OUTPUT_QUANTITIES (n, MAX_HORIZON, len(OUTPUT_QUANTITIES)) as served."""

    __slots__ = ("predict", "fallback", "climatology", "distribution", "n_stations", "version", "architecture")

    def __init__(self, predict, fallback, climatology, distribution, n_stations, version, architecture):
        self.predict = predict
        self.fallback = fallback
        self.climatology = climatology
        self.distribution = distribution
        self.n_stations = n_stations
        self.version = version
        self.architecture = architecture

    def quantities(self, x):
        cap = x[:, F.COL["capacity"]]
        blocks = [slice(i, i + FORWARD_BLOCK_ROWS) for i in range(0, len(x), FORWARD_BLOCK_ROWS)]
        return np.concatenate([self.distribution.quantities(self.predict(x[b]), cap[b], self.fallback(x[b]),
                                                            self.climatology(x[b])) for b in blocks])


def model_fn(model_dir):
    config = _read_json(model_dir, CONFIG)
    problem = F.contract_problem(config.get("feature_columns"), config.get("output_columns"))
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
    if arch != velib_gbm.ARCHITECTURE:
        raise ModelLoadError(f"{os.path.join(model_dir, CONFIG)}: architecture {arch!r} is unknown to this code "
                             f"({velib_gbm.ARCHITECTURE}); package the model with its transform_code")
    for name in velib_gbm.FILES + (velib_distribution.FILE,):
        if not os.path.exists(os.path.join(model_dir, name)):
            raise ModelLoadError(f"{os.path.join(model_dir, name)}: missing; the model.tar.gz of a "
                                 f"{arch} model must hold it at its root")
    try:
        forecaster = velib_gbm.load(model_dir, config)
        distribution = velib_distribution.load(model_dir)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ModelLoadError(f"{model_dir}: cannot load the {arch} model ({e}); repackage the model") from None
    return LoadedModel(forecaster.predict, forecaster.fallback, forecaster.climatology, distribution, n_stations, version, arch)


def model_warmup_fn(model_dir, model):
    """The toolkit's hook (sagemaker-inference >= 1.10), once after model_fn and before the first
    request, on the thread that serves it: a CSV request through input_fn -> predict_fn ->
    output_fn, so a job's first mini-batch does not pay a process's first pass (first
    allocations, lazy imports). Two blocks, not one: the first block's buffers come from mmap
    and are given back; the second's are the heap pages later blocks reuse. It runs the hooks'
    code, not the hooks: a module that wraps predict_fn (the fault tests count its calls) sees
    requests only."""
    output_fn(_predict(codec.decode(_warmup_csv(2 * FORWARD_BLOCK_ROWS), codec.CSV), model), codec.CSV)


def _warmup_csv(n):
    """n valid records: an empty unknown station (index 0, capacity 1) in the service area."""
    lat = sum(codec.SERVICE_AREA_LAT) / 2
    lon = sum(codec.SERVICE_AREA_LON) / 2
    row = ["0"] * F.HISTORY_LEN + ["0", "0", "0", "0", "1", str(F.UNKNOWN_STATION_INDEX), str(lat), str(lon), "0", "0", "0", "0"]
    return (",".join(row) + "\n") * n


def input_fn(input_data, content_type):
    # Exactly two parameters: the toolkit passes its context as a third one if there is room.
    return codec.decode(input_data, content_type)


def predict_fn(data, model):
    return _predict(data, model)


def _predict(data, model):
    if data.x[:, F.COL["station_index"]].max() > model.n_stations:
        codec.check_station_index(data, model.n_stations)
    unknown = data.x[:, F.COL["station_index"]] == F.UNKNOWN_STATION_INDEX
    return model.quantities(data.x), unknown, data


def output_fn(prediction, accept):
    quantities, unknown, batch = prediction
    return codec.encode(quantities, unknown, batch, accept)


def _read_json(model_dir, name):
    path = os.path.join(model_dir, name)
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"{path}: cannot read ({e}); the model.tar.gz must hold {name} at its root") from None
