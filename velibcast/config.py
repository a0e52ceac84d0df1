"""Run configuration: one YAML file, checked once into typed records, hashed into the run's identity.

`configs/local.yaml` is the embedded default (local storage under ./data, the local
runtime, the bundled real sample). Every key has a default in the records below, so a config
file only states what differs. Loading checks every value against its field's type and range
and fails with one line naming the file, the key and the rule; a stage then reads
`cfg.transform.instance_count` as the int it is, never `int(cfg["transform"][...])`. Unknown keys
are an error: a typo must not silently fall back.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import json
import os
import re
import tempfile
import types
import typing
from datetime import date, datetime
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
import yaml
from msgspec import Meta

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

Seconds = Annotated[float, Meta(gt=0)]
Count = Annotated[int, Meta(ge=1)]
Share = Annotated[float, Meta(ge=0, le=1)]
ZonedTime = Annotated[datetime, Meta(tz=True)]


class _Section(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A config section: every field has its default; unknown keys are refused."""


class StoreSettings(_Section, frozen=True):
    root: str = "./data"                 # where runs, models and forecasts live
    s3: dict[str, Any] = {}              # ClientParams overrides; empty = standard AWS chain


class SnapshotSettings(_Section, frozen=True):
    root: str | None = None              # defaults to store.root (holds velib/snapshots/...)
    on_bad_record: Literal["skip", "fail"] = "skip"   # skip (count with reason) | fail (stop, naming object+line)
    on_bad_object: Literal["skip", "fail"] = "skip"


class WindowSettings(_Section, frozen=True):
    max_staleness_hours: Seconds = C.MAX_STALENESS_HOURS


class SageMakerSettings(_Section, frozen=True):
    role_arn: str | None = None
    region: str | None = None
    image_uri: str | None = None


class TransformSettings(_Section, frozen=True):
    """The job's settings. CreateTransformJob's own limits (payload, retries, timeout) are checked
    by batch_transform/spec.py, where the service's rules live; here only their types."""

    backend: Literal["local", "sagemaker"] = "local"
    format: Literal["csv", "jsonl"] = "csv"
    instance_type: str = C.DEFAULT_INSTANCE_TYPE
    instance_count: int = 1
    max_concurrent_transforms: int = 2
    max_payload_mb: int = C.DEFAULT_MAX_PAYLOAD_MB
    batch_strategy: str = C.DEFAULT_BATCH_STRATEGY
    max_shard_bytes: Count = C.TRANSFORM_SHARD_MAX_BYTES
    invocations_timeout_s: int = C.INVOCATIONS_TIMEOUT_S_DEFAULT
    invocations_max_retries: int = C.INVOCATIONS_MAX_RETRIES_DEFAULT
    wait_deadline_s: Seconds = C.POLL_DEADLINE_S   # how long a run follows its transform job (both backends)
    sagemaker: SageMakerSettings = SageMakerSettings()


class ModelSettings(_Section, frozen=True):
    uri: str | None = None               # a model.tar.gz; None = the store's champion
    train_start: ZonedTime | None = None  # used by `velibcast train` and `make demo`
    train_end: ZonedTime | None = None    # excluded: [train_start, train_end) like every range


class StageTimeouts(_Section, frozen=True):
    """Prefect timeout_seconds of each stage."""

    windows: Seconds = C.STAGE_TIMEOUTS_S["windows"]
    transform: Seconds = C.STAGE_TIMEOUTS_S["transform"]
    publish: Seconds = C.STAGE_TIMEOUTS_S["publish"]
    report: Seconds = C.STAGE_TIMEOUTS_S["report"]
    score: Seconds = C.STAGE_TIMEOUTS_S["score"]

    def seconds(self, stage: str) -> float:
        return float(getattr(self, stage))


class RunSettings(_Section, frozen=True):
    default_run_date: date | None = None      # the evaluation product's day; None = yesterday in Europe/Paris
    default_as_of: ZonedTime | None = None    # the day-ahead and nowcast products' as-of time; None = now
    timeouts_s: StageTimeouts = StageTimeouts()
    # refuse a night whose origin has windows for fewer than this share of the network
    min_station_coverage: Share = C.MIN_STATION_COVERAGE


class Settings(_Section, frozen=True):
    store: StoreSettings = StoreSettings()
    snapshots: SnapshotSettings = SnapshotSettings()
    windows: WindowSettings = WindowSettings()
    transform: TransformSettings = TransformSettings()
    model: ModelSettings = ModelSettings()
    run: RunSettings = RunSettings()
    pricing: str = "pricing.yaml"        # relative to the packaged configs (velibcast.configs)


class Config:
    """The typed settings (`cfg.transform`, `cfg.run`, ...) and the file they came from.

    Built from a mapping (a YAML file's, or a manifest's `parameters.config`), checked like a file.
    `cfg.data` is the same settings as plain JSON values, as manifests record them.
    """

    def __init__(self, data: dict | Settings, source: str = "<defaults>"):
        self.settings = data if isinstance(data, Settings) else _typed(data, source)
        self.source = source
        s = self.settings
        self.store, self.snapshots, self.windows = s.store, s.snapshots, s.windows
        self.transform, self.model, self.run = s.transform, s.model, s.run

    @property
    def data(self) -> dict:
        return msgspec.to_builtins(self.settings)

    @property
    def root(self) -> str:
        return _abs(self.store.root)

    @property
    def snapshots_root(self) -> str:
        return _abs(self.snapshots.root or self.store.root)

    def storage(self) -> Storage:
        return Storage(ClientParams.from_dict(self.store.s3))

    def hash(self) -> str:
        """Hash of what changes the forecasts, by value (2 and 2.0 hours are one config); store
        locations and run defaults do not."""
        relevant = {k: v for k, v in self.data.items() if k not in ("store", "run")}
        blob = json.dumps(relevant, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:8]

    def pricing_path(self) -> Path:
        p = Path(self.settings.pricing)
        return p if p.is_absolute() else CONFIG_DIR / p


def _abs(uri: str) -> str:
    if uri.startswith("s3://") or uri.startswith("file://"):
        return uri.rstrip("/")
    return str(Path(uri).expanduser().resolve())


# ---------------------------------------------------------------- checking
class _Loader(yaml.SafeLoader):
    """YAML without its date guessing: a date or time is text until its field's type reads it, so
    `2022-13-01` is a config error naming the key, and a time keeps the zone it was written with."""


_Loader.yaml_implicit_resolvers = {
    ch: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for ch, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}

_AT = re.compile(r" - at `\$((?:\.[A-Za-z0-9_]+)*)`$")
_UNKNOWN = re.compile(r"unknown field `([^`]*)`")


@functools.cache
def _hints(struct: type) -> dict[str, Any]:
    return typing.get_type_hints(struct, include_extras=True)


def _unwrap(t) -> tuple[list, list]:
    """The arms of a field type (Optional's included) and its constraints (msgspec.Meta)."""
    metas = []
    if typing.get_origin(t) is Annotated:
        t, *extra = typing.get_args(t)
        metas += [m for m in extra if isinstance(m, Meta)]
    if typing.get_origin(t) in (typing.Union, types.UnionType):
        arms, more = [], []
        for a in typing.get_args(t):
            sub, m = _unwrap(a)
            arms += sub
            more += m
        return arms, metas + more
    return [t], metas


def _struct_of(t) -> type | None:
    """The section (msgspec Struct) a field type holds, if it holds one."""
    return next((a for a in _unwrap(t)[0] if isinstance(a, type) and issubclass(a, msgspec.Struct)), None)


def _field_type(keys: list[str]):
    t: Any = Settings
    for k in keys:
        struct = _struct_of(t)
        assert struct is not None  # msgspec names keys inside sections only
        t = _hints(struct)[k]
    return t


def _wanted(t) -> str:
    """What a field takes, in words: the message's `must be ...`."""
    arms, metas = _unwrap(t)
    words = {int: "a whole number", float: "a number", str: "text", date: "a date (YYYY-MM-DD)",
             datetime: "a time with a zone (write it like 2022-05-26T06:00Z)"}
    for a in arms:
        if typing.get_origin(a) is Literal:
            return f"one of {sorted(typing.get_args(a))}"
        if a is dict or typing.get_origin(a) is dict or (isinstance(a, type) and issubclass(a, msgspec.Struct)):
            return "a mapping of keys to values"
    text = " or ".join(words[a] for a in arms if a in words)
    bounds = [f"{op} {getattr(m, name):g}" for m in metas
              for name, op in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")) if getattr(m, name) is not None]
    return text + (" " + " and ".join(bounds) if bounds else "") + (", or left out" if type(None) in arms else "")


def _times_read(raw: Any, t: Any = Settings) -> Any:
    """Time fields written as ISO text (`2022-05-26T06:00Z`, minutes only) read as datetimes, as on
    the command line; anything unreadable is left for the check to name."""
    struct = _struct_of(t)
    if struct is not None and isinstance(raw, dict):
        hints = _hints(struct)
        return {k: _times_read(v, hints[k]) if k in hints else v for k, v in raw.items()}
    if datetime in _unwrap(t)[0] and isinstance(raw, str):
        try:
            return datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            return raw
    return raw


def _sections_filled(raw: Any, t: Any = Settings) -> Any:
    """A section written with every key commented out (YAML's null) takes its defaults."""
    struct = _struct_of(t)
    if struct is None or not isinstance(raw, dict):
        return raw
    hints = _hints(struct)
    out = {}
    for k, v in raw.items():
        sub = _struct_of(hints[k]) if k in hints else None
        out[k] = {} if sub is not None and v is None else _sections_filled(v, hints.get(k, Any))
    return out


def _value_at(raw: Any, keys: list[str]) -> Any:
    for k in keys:
        raw = raw[k]
    return raw


def _typed(raw: Any, source: str) -> Settings:
    """The settings of `raw`, or one ConfigError naming `source`, the key and what it takes."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: the file must be a mapping of keys to values")
    written = _sections_filled(raw)
    try:
        settings = msgspec.convert(_times_read(written), Settings)
    except msgspec.ValidationError as e:
        raise _config_error(written, source, str(e)) from None  # naming each value as written
    try:
        ClientParams.from_dict(settings.store.s3)
    except Exception as e:  # credentials never belong here: they come from the AWS chain
        raise ConfigError(f"{source}: store.s3: {e}; allowed keys: endpoint_url, region_name, profile_name, "
                          "max_attempts (credentials come from the standard AWS chain)") from None
    return settings


def _config_error(raw: dict, source: str, message: str) -> ConfigError:
    at = _AT.search(message)
    keys = [k for k in at.group(1).split(".") if k] if at else []
    unknown = _UNKNOWN.search(message)
    if unknown:
        arms, _ = _unwrap(_field_type(keys))
        known = list(arms[0].__struct_fields__)
        prefix = "".join(k + "." for k in keys)
        close = difflib.get_close_matches(unknown.group(1), known, n=1)
        hint = f"did you mean {prefix + close[0]!r}? " if close else ""
        return ConfigError(f"{source}: unknown key {prefix + unknown.group(1)!r}; {hint}known keys here: "
                           f"{', '.join(sorted(known))}")
    if not at:  # pragma: no cover - msgspec names the location of every error it raises
        return ConfigError(f"{source}: {message}")
    key, t = ".".join(keys), _field_type(keys)
    wanted = _wanted(t)
    if wanted.startswith("one of"):
        return ConfigError(f"{source}: {key}={_value_at(raw, keys)!r}; use {wanted}")
    if keys[:2] == ["store", "s3"] or wanted.startswith("a mapping"):  # not echoed: a misplaced credential
        return ConfigError(f"{source}: {key} must be {wanted}, not a {type(_value_at(raw, keys)).__name__}")
    default = _value_at(msgspec.to_builtins(Settings()), keys)
    hint = f", like the default {default!r}" if default is not None else ""
    return ConfigError(f"{source}: {key}={_value_at(raw, keys)!r} must be {wanted}{hint}")


def _merged(base: dict, override: dict) -> dict:
    """`override`'s values over `base`'s, section by section."""
    out = dict(base)
    for k, v in override.items():
        out[k] = _merged(base[k], v) if isinstance(base.get(k), dict) and isinstance(v, dict) else v
    return out


def load_config(path: str | Path | None = None, overrides: dict | None = None) -> Config:
    raw: Any = {}
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
            raw = yaml.load(p.read_text(), Loader=_Loader) or {}
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            at = f" line {mark.line + 1}" if mark else ""
            raise ConfigError(f"{p}{at}: not valid YAML ({getattr(e, 'problem', e)}); fix the syntax there") from None
        source = str(p)
    if overrides:
        if not isinstance(raw, dict):
            raise ConfigError(f"{source}: the file must be a mapping of keys to values")
        raw = _merged(raw, overrides)
    return Config(raw, source)


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


def missing_folder(uri: str) -> Path | None:
    """The local folder of `uri` if it does not exist (an S3 prefix always does)."""
    folder = None if uri.startswith("s3://") else Path(uri.removeprefix("file://"))
    return folder if folder is not None and not folder.is_dir() else None


def missing_root(cfg: Config, key: str, folder: Path) -> ConfigError:
    """A folder a command reads that does not exist: a mistyped root, or a command run from another
    folder than the one holding ./data; not an empty store (which would read as "no champion model"
    or "no snapshot")."""
    return ConfigError(f"{cfg.source}: {key} {folder} does not exist (a relative root is read from the current "
                       f"folder, {Path.cwd()}); run from the folder that holds it, set {key} to it, or seed it "
                       "with `velibcast demo` or `velibcast snapshots import`")


def check_store_exists(cfg: Config) -> None:
    """The store root a command reads from (forecasts, the champion) exists."""
    if folder := missing_folder(cfg.root):
        raise missing_root(cfg, "store.root", folder)
