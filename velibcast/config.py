"""Run configuration: one YAML file, validated once, hashed into the run's identity.

`configs/local.yaml` is the embedded default (local storage under ./data, the local
runtime, the bundled real sample). Every key has a default here, so a config file only
states what differs. Unknown keys are an error: a typo must not silently fall back.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from velibcast import constants as C
from velibcast.errors import ConfigError
from velibcast.storage import ClientParams, Storage

# Package data (the repository's configs/ folder): found the same way in a checkout and in a wheel install.
try:
    CONFIG_DIR = Path(str(resources.files("velibcast.configs")))
except ModuleNotFoundError:
    # An editable install made before configs/ became the package velibcast.configs maps only the
    # older packages; its checkout still has configs/ beside velibcast/. `pip install -e .` removes the need.
    CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"

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
        "wait_deadline_s": C.POLL_DEADLINE_S,   # how long a run follows its transform job (both backends)
        "sagemaker": {"role_arn": None, "region": None, "image_uri": None},
    },
    "model": {
        "uri": None,                 # a model.tar.gz; None = newest under <root>/models/
        "train_start": None,         # used by `velibcast train` and `make demo`
        "train_end": None,           # excluded: [train_start, train_end) like every range
    },
    "run": {
        "default_run_date": None,    # the evaluation product's day; None = yesterday in Europe/Paris
        "default_as_of": None,       # the day-ahead and nowcast products' as-of time; None = now
        "timeouts_s": dict(C.STAGE_TIMEOUTS_S),  # Prefect timeout_seconds of each stage
        # refuse a night whose origin has windows for fewer than this share of the network
        "min_station_coverage": C.MIN_STATION_COVERAGE,
    },
    "pricing": "pricing.yaml",       # relative to the packaged configs (velibcast.configs)
}

_ENUMS = {
    ("snapshots", "on_bad_record"): {"skip", "fail"},
    ("snapshots", "on_bad_object"): {"skip", "fail"},
    ("transform", "backend"): {"local", "sagemaker"},
    ("transform", "format"): {"csv", "jsonl"},
}


def _merge(base: dict, override: dict, path: str = "", source: str = "<overrides>") -> dict:
    if not isinstance(override or {}, dict):
        raise ConfigError(f"{source}: {path.rstrip('.') or 'the file'} must be a mapping of keys to values")
    out = copy.deepcopy(base)
    for k, v in (override or {}).items():
        where = f"{path}{k}"
        if k not in base:
            close = difflib.get_close_matches(str(k), [str(b) for b in base], n=1)
            hint = f"did you mean {path + close[0]!r}? " if close else ""
            raise ConfigError(f"{source}: unknown key {where!r}; {hint}known keys here: {', '.join(sorted(base))}")
        if isinstance(base[k], dict) and base[k] and not isinstance(v, dict):
            raise ConfigError(f"{source}: {where!r} must be a mapping (keys: {', '.join(sorted(base[k]))})")
        if isinstance(base[k], dict) and base[k]:
            out[k] = _merge(base[k], v, where + ".", source)
        else:
            out[k] = v
    return out


def _check_types(defaults: dict, data: dict, source: str, path: str = "") -> None:
    """Each value of the type its default has: a list as store.root or text as a share failed deep
    inside a run, as an AttributeError or a ValueError. A default of None takes text (or a YAML
    date, which a date key reads as text), a number takes an integer or a decimal."""
    for k, default in defaults.items():
        key, v = f"{path}{k}", data[k]
        if isinstance(default, dict) and default:
            _check_types(default, v, source, key + ".")
            continue
        if isinstance(default, dict):
            if not isinstance(v, dict):  # not echoed: a misplaced credential would be printed
                raise ConfigError(f"{source}: {key} must be a mapping of keys to values, not a {type(v).__name__}")
            continue
        if isinstance(default, (int, float)):
            fits, wanted = isinstance(v, (int, float)) and not isinstance(v, bool), "a number"
        elif isinstance(default, str):
            fits, wanted = isinstance(v, str), "text"
        else:
            fits, wanted = v is None or isinstance(v, (str, date)), "text"
        if not fits:
            hint = f"like the default {default!r}" if default is not None else "or left out"
            raise ConfigError(f"{source}: {key}={v!r} must be {wanted}, {hint}")


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
            shipped = ", ".join(f"configs/{c.name}" for c in sorted(CONFIG_DIR.glob("*.yaml")) if c.name != "pricing.yaml")
            raise ConfigError(f"config file {path} not found; give a YAML file that exists, or one of the shipped "
                              f"configs: {shipped}")
        try:
            raw = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            at = f" line {mark.line + 1}" if mark else ""
            raise ConfigError(f"{p}{at}: not valid YAML ({getattr(e, 'problem', e)}); fix the syntax there") from None
        source = str(p)
    data = _merge(DEFAULTS, raw, source=source)
    if overrides:
        data = _merge(data, overrides)
    _check_types(DEFAULTS, data, source)
    for (sec, key), allowed in _ENUMS.items():
        if data[sec][key] not in allowed:
            raise ConfigError(f"{source}: {sec}.{key}={data[sec][key]!r}; use one of {sorted(allowed)}")
    try:
        ClientParams.from_dict(data["store"]["s3"])
    except Exception as e:  # credentials never belong here: they come from the AWS chain
        raise ConfigError(f"{source}: store.s3: {e}; allowed keys: endpoint_url, region_name, profile_name, "
                          "max_attempts (credentials come from the standard AWS chain)") from None
    for stage, seconds in data["run"]["timeouts_s"].items():
        if not isinstance(seconds, (int, float)) or seconds <= 0:
            raise ConfigError(f"{source}: run.timeouts_s.{stage}={seconds!r}; give a number of seconds > 0")
    if float(data["windows"]["max_staleness_hours"]) <= 0:
        raise ConfigError(f"{source}: windows.max_staleness_hours must be > 0")
    if not 0.0 <= float(data["run"]["min_station_coverage"]) <= 1.0:
        raise ConfigError(f"{source}: run.min_station_coverage must be between 0 and 1 (a share of the "
                          "network's stations)")
    return Config(data, source)


def check_store_writable(cfg: Config) -> None:
    """Fail at start, not after the windows are built, when a local store root cannot be written.

    S3 roots are not probed: a probe would be one more write the IAM policy must allow, and the
    first real write names the bucket and key if it is refused.
    """
    root = cfg.root
    if root.startswith("s3://"):
        return
    path = Path(root[len("file://"):] if root.startswith("file://") else root)
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-check-", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise ConfigError(f"{cfg.source}: store.root {path} is not writable ({e.strerror}); "
                          "set store.root to a folder you can write, e.g. ./data") from None
