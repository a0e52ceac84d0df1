"""Run configuration: one YAML file, validated once, hashed into the run's identity.

`configs/local.yaml` is the embedded default (local storage under ./data, the local
runtime, the bundled real sample). Every key has a default here, so a config file only
states what differs. Unknown keys are an error: a typo must not silently fall back.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from velibcast import constants as C
from velibcast.errors import ConfigError
from velibcast.storage import ClientParams, Storage

REPO_ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = REPO_ROOT / "configs"

DEFAULTS: dict[str, Any] = {
    "store": {
        "root": "./data",            # where runs, models and forecasts live
        "s3": {},                    # ClientParams overrides; empty = standard AWS chain
    },
    "snapshots": {
        "root": None,                # defaults to store.root (holds velib/snapshots/...)
        "on_bad_record": "skip",     # skip (count with reason) | fail (stop, naming object+line)
        "on_bad_object": "skip",
    },
    "windows": {
        "max_staleness_hours": C.MAX_STALENESS_HOURS,
    },
    "transform": {
        "backend": "local",          # local | sagemaker
        "format": "csv",             # csv | jsonl
        "instance_type": C.DEFAULT_INSTANCE_TYPE,
        "instance_count": 1,
        "max_concurrent_transforms": 2,
        "max_payload_mb": C.DEFAULT_MAX_PAYLOAD_MB,
        "batch_strategy": C.DEFAULT_BATCH_STRATEGY,
        "max_shard_bytes": C.TRANSFORM_SHARD_MAX_BYTES,
        "invocations_timeout_s": C.INVOCATIONS_TIMEOUT_S_DEFAULT,
        "invocations_max_retries": C.INVOCATIONS_MAX_RETRIES_DEFAULT,
        "sagemaker": {"role_arn": None, "region": None, "image_uri": None},
    },
    "model": {
        "uri": None,                 # a model.tar.gz; None = newest under <root>/models/
        "train_start": None,         # used by `velibcast train` and `make demo`
        "train_end": None,
    },
    "run": {
        "default_run_date": None,    # None = yesterday in Europe/Paris
    },
    "pricing": "pricing.yaml",       # relative to configs/
}

_ENUMS = {
    ("snapshots", "on_bad_record"): {"skip", "fail"},
    ("snapshots", "on_bad_object"): {"skip", "fail"},
    ("transform", "backend"): {"local", "sagemaker"},
    ("transform", "format"): {"csv", "jsonl"},
}


def _merge(base: dict, override: dict, path: str = "") -> dict:
    out = copy.deepcopy(base)
    for k, v in (override or {}).items():
        where = f"{path}{k}"
        if k not in base:
            raise ConfigError(f"unknown config key {where!r}; known keys here: {sorted(base)}")
        if isinstance(base[k], dict) and base[k] and not isinstance(v, dict):
            raise ConfigError(f"config key {where!r} must be a mapping")
        if isinstance(base[k], dict) and base[k]:
            out[k] = _merge(base[k], v, where + ".")
        else:
            out[k] = v
    return out


@dataclass(frozen=True)
class Config:
    data: dict
    source: str = "<defaults>"

    def __getitem__(self, k):
        return self.data[k]

    @property
    def root(self) -> str:
        return _abs(self.data["store"]["root"])

    @property
    def snapshots_root(self) -> str:
        return _abs(self.data["snapshots"]["root"] or self.data["store"]["root"])

    def storage(self) -> Storage:
        return Storage(ClientParams.from_dict(self.data["store"]["s3"]))

    def hash(self) -> str:
        """Hash of what changes the forecasts; store locations do not."""
        relevant = {k: v for k, v in self.data.items() if k not in ("store", "run")}
        blob = json.dumps(relevant, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:8]

    def pricing_path(self) -> Path:
        p = Path(self.data["pricing"])
        return p if p.is_absolute() else CONFIG_DIR / p

    def with_overrides(self, **sections) -> "Config":
        return Config(_merge(self.data, sections), self.source)


def _abs(uri: str) -> str:
    if uri.startswith("s3://") or uri.startswith("file://"):
        return uri.rstrip("/")
    return str(Path(uri).expanduser().resolve())


def load_config(path: str | Path | None = None, overrides: dict | None = None) -> Config:
    raw: dict = {}
    source = "<defaults>"
    if path is not None:
        p = Path(path)
        if not p.is_file() and (CONFIG_DIR / p.name).is_file():
            p = CONFIG_DIR / p.name
        if not p.is_file():
            raise ConfigError(f"config file {path} not found (try configs/local.yaml)")
        raw = yaml.safe_load(p.read_text()) or {}
        source = str(p)
    data = _merge(DEFAULTS, raw)
    if overrides:
        data = _merge(data, overrides)
    for (sec, key), allowed in _ENUMS.items():
        if data[sec][key] not in allowed:
            raise ConfigError(f"{source}: {sec}.{key}={data[sec][key]!r}; use one of {sorted(allowed)}")
    try:
        ClientParams.from_dict(data["store"]["s3"])
    except Exception as e:  # credentials never belong here: they come from the AWS chain
        raise ConfigError(f"{source}: store.s3: {e}; allowed keys: endpoint_url, region_name, profile_name, "
                          "max_attempts (credentials come from the standard AWS chain)") from None
    if float(data["windows"]["max_staleness_hours"]) <= 0:
        raise ConfigError(f"{source}: windows.max_staleness_hours must be > 0")
    return Config(data, source)
