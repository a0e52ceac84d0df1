"""What a run needs from its config and store, checked by the CLI before Prefect starts.

A user error found here is one line and about a second; found inside a Prefect task it came
after the temporary API server's start (10 s on this machine) and behind two tracebacks. The
checks need only the config and the store: the root is writable, the model exists, is readable
and meets the feature contract, and the snapshot store holds captures for the hours the run
reads. The flows check the model again in their first task, so a deployment run refuses it too.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from velibcast.batch_transform.spec import SpecError, validate_job_spec
from velibcast.config import Config, check_store_exists, check_store_writable, missing_folder, missing_root
from velibcast.datasets.snapshots import list_snapshots
from velibcast.datasets.windows import latest_origin, origins_for_range, origins_for_run_date
from velibcast.errors import ConfigError
from velibcast.flows.products import product_named
from velibcast.flows.run_identity import RunSpec, yesterday_in_paris
from velibcast.flows.run_model import load_model_info, run_model_uri
from velibcast.timeutil import PARIS, UTC, iso_minute
from velibcast.transform_code.velib_features import HISTORY_LEN


def default_run_date(cfg: Config, now: datetime | None = None) -> date:
    """The Paris day a run without --run-date or a range forecasts: run.default_run_date, else the day
    before `now` (default: now) there. A flow run gives its expected start time, for its name and its
    run alike: a run started a second before midnight forecasts that day's eve, whenever it decides."""
    return cfg.run.default_run_date or yesterday_in_paris(now)


def configured_as_of(cfg: Config, as_of: datetime | None = None) -> datetime | None:
    """The time a day-ahead or nowcast run forecasts as of: `as_of`, else run.default_as_of; None: the
    time the run starts."""
    return as_of or cfg.run.default_as_of


def product_spec(cfg: Config, product: str, as_of: datetime | None) -> RunSpec:
    """The run of a day-ahead or nowcast product as of `as_of` (default: run.default_as_of, else
    now): its one origin is
    the latest whole hour with data at that time; it reads no capture taken after `as_of`."""
    p = product_named(product)
    if not p.as_of:
        raise ConfigError(f"the {p.name} product forecasts past days: give --run-date or --start/--end, not --as-of")
    as_of = (configured_as_of(cfg, as_of) or datetime.now(UTC)).astimezone(UTC)
    staleness = timedelta(hours=cfg.windows.max_staleness_hours)
    origin = latest_origin(cfg.storage(), cfg.snapshots_root, as_of, staleness)
    if origin is None:
        raise ConfigError(
            f"no snapshot under {cfg.snapshots_root} captured at or before {iso_minute(as_of)} within "
            f"{staleness.total_seconds() / 3600:g} h before a whole hour, so no origin to forecast from; check --as-of "
            f"and snapshots.root in {cfg.source}, or bring captures in with `velibcast snapshots import`")
    return RunSpec(origin.astimezone(PARIS).date(), origin, origin + timedelta(hours=1), p.name, as_of)


def run_origins(cfg: Config, run_date: date | None, start: datetime | None, end: datetime | None) -> list[datetime]:
    if start is not None and end is not None:
        return origins_for_range(start, end)
    return origins_for_run_date(run_date or default_run_date(cfg))


# The transform settings that become CreateTransformJob fields (stages.job_spec_for), by field.
TRANSFORM_FIELDS = {
    "MaxConcurrentTransforms": "max_concurrent_transforms",
    "MaxPayloadInMB": "max_payload_mb",
    "BatchStrategy": "batch_strategy",
    "ModelClientConfig.InvocationsTimeoutInSeconds": "invocations_timeout_s",
    "ModelClientConfig.InvocationsMaxRetries": "invocations_max_retries",
    "TransformResources.InstanceType": "instance_type",
    "TransformResources.InstanceCount": "instance_count",
}


def check_transform(cfg: Config) -> None:
    """The config's transform settings within CreateTransformJob's limits, checked on a stand-in job:
    the run's own job is validated only once its windows are written."""
    t = cfg.transform
    spec: dict = {"TransformJobName": "preflight", "ModelName": "preflight",
                  "TransformInput": {"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix",
                                                                     "S3Uri": "s3://preflight/input/"}}},
                  "TransformOutput": {"S3OutputPath": "s3://preflight/output/"}}
    for field, key in TRANSFORM_FIELDS.items():
        parent, _, name = field.rpartition(".")
        (spec.setdefault(parent, {}) if parent else spec)[name] = getattr(t, key)
    try:
        validate_job_spec(spec)
    except SpecError as e:
        key = TRANSFORM_FIELDS[e.field]
        raise ConfigError(f"{cfg.source}: transform.{key}={getattr(t, key)!r}: the transform job's {e}; change it in "
                          "the config") from None


def check_run(cfg: Config, origins: list[datetime] | None = None) -> str:
    """Fail with one ConfigError line unless a run can start; returns the model's URI. With
    `origins`, the snapshot store must hold a capture in the hours their windows read."""
    check_transform(cfg)
    if not cfg.model.uri:
        check_store_exists(cfg)  # the champion is read from it; else a run may write to a new store
    # seen before the writable check creates the store root, which may be the snapshots' too
    snapshots_missing = missing_folder(cfg.snapshots_root)
    check_store_writable(cfg)
    storage = cfg.storage()
    uri = run_model_uri(cfg, storage)
    if not storage.exists(uri):
        if cfg.model.uri:
            raise ConfigError(f"{cfg.source}: model.uri {uri} does not exist; point model.uri at a model.tar.gz, "
                              "or remove it to use the store's champion")
        raise ConfigError(f"the champion pointer of {cfg.root} names {uri}, which does not exist; "
                          "promote another model with `velibcast models promote VERSION --force`")
    load_model_info(storage, uri)
    if snapshots_missing:  # every run reads snapshots
        raise missing_root(cfg, "snapshots.root" if cfg.snapshots.root else "store.root", snapshots_missing)
    if origins:
        first = origins[0] - timedelta(hours=HISTORY_LEN + cfg.windows.max_staleness_hours)
        if not list_snapshots(storage, cfg.snapshots_root, first, origins[-1]):
            raise ConfigError(
                f"no snapshot under {cfg.snapshots_root} captured in {iso_minute(first)}..{iso_minute(origins[-1])}, "
                f"the hours the origins {iso_minute(origins[0])}..{iso_minute(origins[-1])} read; check the run "
                f"date and snapshots.root (or store.root) in {cfg.source}, or bring them in with `velibcast snapshots import`")
    return uri
