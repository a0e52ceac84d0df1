"""model.tar.gz in SageMaker's structure, and the model version that names it.

Layout (what SageMaker extracts to /opt/ml/model):
    trees.json profiles.json   gbm: the boosted trees as arrays (velib_gbm.py evaluates them with NumPy)
    event_profiles.json        and the station profiles of occupancy, and of being empty or full
    distribution.json          the residual levels of the predictive distribution, its served quantile
                               levels and event weights
    config.json station_mappings.json metadata.json
    code/inference.py code/requirements.txt code/velib_*.py
The archive is byte-reproducible: sorted entries, fixed mtimes and owners, gzip mtime 0.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from datetime import datetime
from pathlib import Path

from velibcast import storage as st
from velibcast.timeutil import compact_day
from velibcast.training.registry import model_uri
from velibcast.transform_code import inference, velib_distribution, velib_gbm

CODE_DIR = Path(inference.__file__).resolve().parent
CODE_FILES = ["inference.py", "requirements.txt"] + sorted(
    p.name for p in CODE_DIR.glob("velib_*.py")
)
JSON_ARTIFACTS = [inference.CONFIG, inference.MAPPINGS, inference.METADATA]
PARAMETER_FILES = (*velib_gbm.FILES, velib_distribution.FILE)


def model_version(start: datetime, end: datetime, config: dict, train_config: dict, seed: int) -> str:
    """`<family>-<last training day>-<hash8>` (family: config["family"]): the same data span,
    configs and seed give the same name.

    Lower-case letters, digits and hyphens only, so it is valid in S3 keys and SageMaker model names.
    """
    ident = json.dumps(
        {"start": start.isoformat(), "end": end.isoformat(), "config": config, "train": train_config,
         "seed": seed, "code": code_digest()},
        sort_keys=True,
    )
    return f"{config['family']}-{compact_day(end)}-{hashlib.sha256(ident.encode()).hexdigest()[:8]}"


def code_digest() -> str:
    """The shipped code is part of a version's identity: a handler change is a new model."""
    h = hashlib.sha256()
    for name in CODE_FILES:
        h.update(name.encode() + b"\0" + (CODE_DIR / name).read_bytes())
    return h.hexdigest()


def build_archive(json_artifacts: dict[str, dict]) -> bytes:
    """Every parameter of a model is JSON: no pickle, nothing torch must load."""
    missing = set(JSON_ARTIFACTS) - set(json_artifacts)
    if missing:
        raise ValueError(f"model.tar.gz needs {sorted(missing)}; pass them to build_archive")
    files = {}
    for name, obj in json_artifacts.items():
        # The parameters hold ~100k numbers: one per line would triple their size for no reader.
        indent = None if name in PARAMETER_FILES else 2
        files[name] = (json.dumps(obj, indent=indent, sort_keys=True) + "\n").encode()
    for name in CODE_FILES:
        files[f"code/{name}"] = (CODE_DIR / name).read_bytes()
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(files):
            info = tarfile.TarInfo(name)
            info.size = len(files[name])
            info.mode = 0o644
            info.mtime = 0
            tar.addfile(info, io.BytesIO(files[name]))
    return gzip.compress(raw.getvalue(), mtime=0)


def write_model(storage: st.Storage, out_root: str, version: str, archive: bytes) -> str:
    uri = model_uri(out_root, version)
    storage.write_bytes(uri, archive, content_type="application/gzip")
    return uri


def extract(archive: bytes, dest: Path) -> Path:
    """Unpack as SageMaker does into /opt/ml/model; refuses members that would escape `dest`."""
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        tar.extractall(dest, filter="data")
    return dest
