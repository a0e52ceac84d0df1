"""The local Batch Transform runtime: CreateModel / CreateTransformJob / DescribeTransformJob
semantics without Docker or AWS, with the service's data plane (BTS §2-§4).

A job runs to completion inside create_transform_job (blocking). Its state is one JSON
object per job under `<state_root>/transform-jobs/`, and its `[sagemaker logs]`-style
log next to it (`<name>.log`). Instances are model server processes on free ports.
The state names the process that runs the job (host, boot, pid and start time; the rule
of velibcast/liveness.py, which publish locks follow too), so a job whose process died (killed mid-run) is
described as Failed rather than InProgress forever, and a rerun moves on to its next
attempt (attempts.run_idempotent). A second run of the same job while the first is alive
attaches to it and waits, up to the runtime's wait deadline.

Each instance overlaps objects: up to MaxConcurrentTransforms requests are in flight,
from whichever objects have them (4 one-request objects with MCT 4 take one request's
time, not four).
"""

from __future__ import annotations

import gzip
import io
import json
import logging
import os
import shutil
import tarfile
import tempfile
import threading
import time
import weakref
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

from velibcast import constants as C
from velibcast import storage as st
from velibcast.batch_transform import dataplane as dp
from velibcast.batch_transform.attempts import run_idempotent
from velibcast.batch_transform.container import ClientConfig, Container
from velibcast.batch_transform.errors import (
    ContainerError,
    InvocationFailed,
    ResourceInUse,
    ResourceNotFound,
    StopRequested,
    TransformJobTimeout,
)
from velibcast.batch_transform.lifeline import Lifeline
from velibcast.batch_transform.spec import SpecError, validate_job_spec
from velibcast.errors import DataError, TerminalError
from velibcast.liveness import Owner
from velibcast.timeutil import UTC, iso_millis, iso_second

log = logging.getLogger("velibcast.transform")

_MANIFEST_SHAPE = 'expected a JSON array: [{"prefix": "s3://bucket/prefix/"}, "relative/key", ...]'
_BATCH_STRATEGY_ENV = {"MultiRecord": "MULTI_RECORD", "SingleRecord": "SINGLE_RECORD"}


@dataclass
class _Model:
    name: str
    model_data_url: str
    model_dir: str
    environment: dict
    arn: str
    execution_role_arn: str
    creation_time: datetime
    container: dict           # the PrimaryContainer as created (DescribeModel returns it)


# Fields of a local job's state that DescribeTransformJob does not have: who runs it (to tell a
# dead run from a live one) and where its wall time went (bench, manifest).
LOCAL_FIELDS = ("LocalOwner", "LocalTimings")


@dataclass
class _Object:
    uri: str
    relative: str           # the output name, before ".out"
    log_name: str           # bucket/key as the service logs it


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(t: datetime) -> str:
    return t.isoformat(timespec="milliseconds")


def resolve_batch_parameters(spec: dict, container: dict) -> tuple[int, int, str]:
    """API value, else the container's /execution-parameters, else the defaults (BTS §4.3).
    MaxConcurrentTransforms=0 counts as unset; MaxPayloadInMB=0 is kept (unlimited)."""
    mct = spec.get("MaxConcurrentTransforms") or _int_or_none(container.get("MaxConcurrentTransforms")) \
        or C.DEFAULT_MAX_CONCURRENT_TRANSFORMS
    mpm = spec.get("MaxPayloadInMB")
    if mpm is None:
        mpm = _int_or_none(container.get("MaxPayloadInMB"))
    if mpm is None:
        mpm = C.DEFAULT_MAX_PAYLOAD_MB
    bs = spec.get("BatchStrategy")
    if bs is None:
        raw = str(container.get("BatchStrategy", "")).replace("_", "").lower()
        bs = {"multirecord": "MultiRecord", "singlerecord": "SingleRecord"}.get(raw, C.DEFAULT_BATCH_STRATEGY)
    return int(mct), int(mpm), bs


def _int_or_none(v):
    return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else None


def container_environment(spec: dict, model_env: dict) -> dict[str, str]:
    """Model env, then the job's Environment, then SAGEMAKER_BATCH and the three batch
    values only when the API call set them (BTS §4.1)."""
    env = {**model_env, **(spec.get("Environment") or {}), C.BATCH_ENV: "true"}
    if spec.get("MaxPayloadInMB") is not None:
        env[C.MAX_REQUEST_SIZE] = str(spec["MaxPayloadInMB"])
    if spec.get("BatchStrategy"):
        env[C.BATCH_STRATEGY_ENV] = _BATCH_STRATEGY_ENV[spec["BatchStrategy"]]
    if spec.get("MaxConcurrentTransforms"):
        env[C.MAX_CONCURRENT_TRANSFORMS_ENV] = str(spec["MaxConcurrentTransforms"])
    return env


def server_thread_env(instances: int, max_concurrent: int, cpus: int | None = None) -> dict[str, str]:
    """Each local "instance" gets its share of this machine's cores, as a SageMaker instance has
    its own: the cores divided by instances x MaxConcurrentTransforms, at least one thread per
    server. Without it every server process starts one compute thread per core (torch/OpenMP
    default), so 2 instances on 2 cores ran 4 threads and were slower than 1.
    OMP_WAIT_POLICY=PASSIVE: OpenMP's default keeps idle compute threads spinning, and on a
    loaded machine a spinning thread holds the core its peer needs; bench/transform.py's floor
    (3,000 records, 2 threads, load 4.5) took 1.7-9.4 s spinning against 0.71-0.75 s passive,
    the same CPU as one thread. The model's or job's Environment, applied after, can still set its own."""
    cpus = cpus or os.cpu_count() or 1
    n = str(max(1, cpus // max(1, instances * max(1, max_concurrent))))
    return {"OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n, "OMP_WAIT_POLICY": "PASSIVE"}


def server_plan(spec: dict, model_env: dict, instances: int) -> tuple[dict[str, str], int]:
    """The environment a job's model servers start with, and their HTTP client's connection limit."""
    conc = spec.get("MaxConcurrentTransforms") or C.DEFAULT_MAX_CONCURRENT_TRANSFORMS
    return {**server_thread_env(instances, conc), **container_environment(spec, model_env)}, max(conc, 16)


def distribute(objects: list, instance_count: int) -> list[list]:
    """Objects go whole to instances, round-robin in key order (the service's algorithm is
    unknown, BTS §2.3); one object never spans two instances."""
    return [objects[i::instance_count] for i in range(instance_count)]


class LocalRuntime:
    def __init__(self, storage: st.Storage, state_root: str, settings: dp.DataPlaneSettings | None = None,
                 progress: Callable[[int, int], None] | None = None, *, wait_deadline_s: float = C.POLL_DEADLINE_S,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
                 allow_file_uris: bool = True):
        self.storage = storage
        self.state_root = state_root
        self.settings = settings or dp.DataPlaneSettings()
        self.progress = progress  # called with (objects ended, objects) as each object ends
        self.wait_deadline_s = wait_deadline_s  # how long wait() follows a job another process runs
        self._clock, self._sleep = clock, sleep
        self.allow_file_uris = allow_file_uris  # local paths as S3Uri/S3OutputPath (not for the network API)
        self._models: dict[str, _Model] = {}
        self._stops: dict[str, threading.Event] = {}
        self._started: dict[tuple, list[Container]] = {}  # start_servers: servers a coming job takes
        self._lifeline: Lifeline | None = None  # the extracted models and server logs; made with the first model
        self._background: dict[str, threading.Thread] = {}  # launch_transform_job's jobs, by name

    # ------------------------------------------------------------ models
    def create_model(self, name: str, model_data_url: str, environment: dict | None = None, *,
                     execution_role_arn: str = "", container: dict | None = None) -> dict:
        """Register a model.tar.gz (s3:// or local) and extract it to a temporary directory.
        Re-creating a name with the same model data reuses it. `container` is the PrimaryContainer
        a CreateModel request gave, kept for DescribeModel (the model runs from its data and
        environment whatever its Image says)."""
        known = self._models.get(name)
        if known and known.model_data_url == model_data_url:
            return {"ModelArn": known.arn}
        if known:
            raise ResourceInUse(f"model {name!r} exists with ModelDataUrl {known.model_data_url}; "
                                "use another ModelName for other model data")
        model_dir = tempfile.mkdtemp(prefix=f"model-{name}-", dir=self._home().folder)
        data = self.storage.read_bytes(model_data_url)
        try:
            with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
                tar.extractall(model_dir, filter="data")
        except (tarfile.TarError, zlib.error, OSError) as e:
            shutil.rmtree(model_dir, ignore_errors=True)
            raise TerminalError(f"{model_data_url}: not a readable model.tar.gz ({e})") from e
        if not os.path.isfile(os.path.join(model_dir, "code", C.HANDLER_PROGRAM_DEFAULT)):
            shutil.rmtree(model_dir, ignore_errors=True)
            raise TerminalError(f"{model_data_url}: no code/{C.HANDLER_PROGRAM_DEFAULT} inside; package the "
                                "handlers as SageMaker's PyTorch container expects")
        env = dict(environment or {})
        container = container or {"ModelDataUrl": model_data_url, **({"Environment": env} if env else {})}
        self._models[name] = _Model(name, model_data_url, model_dir, env, self.arn("model", name),
                                    execution_role_arn, _now(), dict(container))
        return {"ModelArn": self._models[name].arn}

    def has_model(self, name: str) -> bool:
        return name in self._models

    def describe_model(self, name: str) -> dict:
        """DescribeModel's shape for a model this runtime holds; ResourceNotFound otherwise."""
        m = self._models.get(name)
        if m is None:
            raise ResourceNotFound(f"Could not find model {name!r}")
        return {"ModelName": m.name, "ModelArn": m.arn, "PrimaryContainer": dict(m.container),
                "ExecutionRoleArn": m.execution_role_arn, "CreationTime": m.creation_time}

    def delete_model(self, name: str) -> None:
        m = self._models.pop(name, None)
        if m is None:
            raise ResourceNotFound(f"Could not find model {name!r}")
        shutil.rmtree(m.model_dir, ignore_errors=True)

    def close(self) -> None:
        """Wait for the jobs started in the background, then remove the extracted models and stop
        the servers started ahead that no job took."""
        for t in list(self._background.values()):
            t.join()
        for started in self._started.values():
            for c in started:
                c.close()
        self._started.clear()
        self._models.clear()
        if self._lifeline is not None:
            self._lifeline.close()  # the extracted models with it
            self._lifeline = None

    def _home(self) -> Lifeline:
        """The runtime's temporary folder, tied to this process: a killed process's models and
        servers go too (lifeline.py)."""
        if self._lifeline is None:
            self._lifeline = Lifeline(prefix="velibcast-runtime-")
            # Callers that never call close() still leave no extracted models behind.
            weakref.finalize(self, self._lifeline.close)
        return self._lifeline

    # ------------------------------------------------------------ servers started ahead of a job
    def start_servers(self, model_name: str, spec: dict) -> None:
        """Start the model servers of a coming job now, while its inputs are still being written:
        their start-up (torch import, model load: 1.8 s of the nightly transform's 6 s) overlaps
        that work. `spec` needs only the fields that shape the servers (ModelName's environment,
        Environment, MaxPayloadInMB, BatchStrategy, MaxConcurrentTransforms, InstanceCount). A job
        takes them only if it would start servers of this very model and environment, and still
        waits for /ping before any request; close() stops those no job took."""
        model = self._models.get(model_name)
        if model is None:
            raise ResourceNotFound(f"ModelName {model_name!r}: Could not find model; call create_model first")
        instances = int(spec["TransformResources"]["InstanceCount"])
        env, conc = server_plan(spec, model.environment, instances)
        self._started.setdefault(_server_key(model, env, conc), []).extend(
            Container(model.model_dir, env, conc, self._home()) for _ in range(instances))

    def _servers_for(self, model: _Model, env: dict[str, str], conc: int, n: int) -> list[Container]:
        """n servers of this model and environment: those started ahead first, then new ones."""
        ahead = self._started.pop(_server_key(model, env, conc), [])
        for c in ahead[n:]:
            c.close()
        return ahead[:n] + [Container(model.model_dir, env, conc, self._home()) for _ in range(n - len(ahead[:n]))]

    def arn(self, kind: str, name: str) -> str:
        """The ARN the service would give a resource of this kind and name."""
        region = os.environ.get("AWS_DEFAULT_REGION", "local")
        return f"arn:aws:sagemaker:{region}:{C.LOCAL_ACCOUNT_ID}:{kind}/{name.lower()}"

    # ------------------------------------------------------------ job state
    def _state_uri(self, name: str) -> str:
        return st.join(self.state_root, "transform-jobs", f"{name}.json")

    def _log_uri(self, name: str) -> str:
        return st.join(self.state_root, "transform-jobs", f"{name}.log")

    def _stop_uri(self, name: str) -> str:
        """A stop request for a job another process runs (stop_transform_job)."""
        return st.join(self.state_root, "transform-jobs", f"{name}.stop")

    def _save(self, state: dict) -> None:
        self.storage.write_text(self._state_uri(state["TransformJobName"]), json.dumps(state, indent=1, sort_keys=True))

    def describe_transform_job(self, name: str, *, local_fields: bool = True) -> dict:
        """DescribeTransformJob's shape; times are datetimes, as boto3 returns them. With
        local_fields=False, only the service's fields (not LOCAL_FIELDS)."""
        try:
            state = json.loads(self.storage.read_text(self._state_uri(name)))
        except st.NotFound as e:
            raise ResourceNotFound(f"Could not find transform job {name!r}") from e
        for k in ("CreationTime", "TransformStartTime", "TransformEndTime", "LastModifiedTime"):
            if k in state:
                state[k] = datetime.fromisoformat(state[k])
        if state["TransformJobStatus"] == "InProgress" and self.storage.exists(self._stop_uri(name)):
            state["TransformJobStatus"] = "Stopping"  # requested by another process; the owner ends it Stopped
        owner = Owner.from_json(state["LocalOwner"]) if state.get("LocalOwner") else None
        dead = owner.dead_because() if owner and state["TransformJobStatus"] in ("InProgress", "Stopping") else None
        if owner and dead:
            state.update(TransformJobStatus="Failed", FailureReason=(
                f"InternalServerError: the process running this job (pid {owner.pid} on {owner.host}) ended before "
                f"the job did: {dead}; rerun to start the next attempt"))
        return state if local_fields else {k: v for k, v in state.items() if k not in LOCAL_FIELDS}

    def list_transform_jobs(self, *, local_fields: bool = True) -> list[dict]:
        """Every job under the state root, described."""
        prefix = st.join(self.state_root, "transform-jobs") + "/"
        names = [i.uri[len(prefix):-len(".json")] for i in self.storage.list(prefix) if i.uri.endswith(".json")]
        return [self.describe_transform_job(n, local_fields=local_fields) for n in names]

    # ------------------------------------------------------------ attempts.Backend
    def find_transform_job(self, name: str) -> dict | None:
        try:
            return self.describe_transform_job(name)
        except ResourceNotFound:
            return None

    def submit_transform_job(self, spec: dict) -> None:
        try:
            self.create_transform_job(spec)
        except ResourceInUse:
            # Another run created it between our describe and create: attach, as on SageMaker.
            log.info("transform job %s appeared concurrently; attaching", spec["TransformJobName"])

    def wait(self, name: str) -> dict:
        """A job run by another live process (or thread): poll its state until it ends, at
        most wait_deadline_s; TransformJobTimeout then (a rerun re-attaches)."""
        deadline = self._clock() + self.wait_deadline_s
        while True:
            d = self.describe_transform_job(name)
            if d["TransformJobStatus"] not in ("InProgress", "Stopping"):
                return d
            if self._clock() + C.LOCAL_WAIT_POLL_S > deadline:
                raise TransformJobTimeout(f"transform job {name} still {d['TransformJobStatus']} after "
                                          f"{self.wait_deadline_s:.0f} s; rerun to re-attach to it (it keeps running)")
            self._sleep(C.LOCAL_WAIT_POLL_S)

    def logs_location(self, name: str) -> str:
        return self._log_uri(name)

    def run_transform_job(self, spec: dict, wait: bool = True) -> dict:
        """Create-or-attach, as on SageMaker (attempts.run_idempotent)."""
        spec = validate_job_spec(spec, allow_file_uris=True)
        return run_idempotent(self, lambda name: {**spec, "TransformJobName": name}, spec["TransformJobName"], wait)

    def stop_transform_job(self, name: str) -> None:
        """Ask a running job to stop: no further requests, its outputs are removed (BTS §1.7).

        A job this runtime runs stops at once. A job another process runs (the owner in its
        state) gets a stop request beside its state, which it reads before each input object
        and before it ends; it describes as Stopping until its owner ends it Stopped."""
        ev = self._stops.get(name)
        if ev is None:
            status = self.describe_transform_job(name)["TransformJobStatus"]  # ResourceNotFound if none
            if status == "Stopping":
                return
            if status != "InProgress":
                raise TerminalError(f"transform job {name} is {status}; only an InProgress job can be stopped")
            self.storage.write_text(self._stop_uri(name), json.dumps({"requested_at": _iso(_now()),
                                                                      "by": Owner.current().to_json()}))
            return
        state = json.loads(self.storage.read_text(self._state_uri(name)))
        state.update(TransformJobStatus="Stopping", LastModifiedTime=_iso(_now()))
        self._save(state)
        ev.set()

    # ------------------------------------------------------------ jobs
    def create_transform_job(self, spec: dict) -> dict:
        """CreateTransformJob, blocking until the job ends; the final describe dict."""
        return self.run_started(self.start_transform_job(spec))

    def start_transform_job(self, spec: dict) -> _JobRun:
        """What CreateTransformJob checks before it answers: the spec, the model, the input
        (an empty one is a ValidationException, as on the service) and a unique name. The
        job is InProgress when this returns; run_started(run) runs it."""
        spec = validate_job_spec(spec, allow_file_uris=self.allow_file_uris,
                                 multi_range_filters=self.settings.multi_range_filters)
        name = spec["TransformJobName"]
        model = self._models.get(spec["ModelName"])
        if model is None:
            raise ResourceNotFound(f"ModelName {spec['ModelName']!r}: Could not find model; call create_model first")
        ti = spec["TransformInput"]
        for field_, value, supported in (
                ("TransformInput.SplitType", ti["SplitType"], ("None", "Line")),
                ("TransformInput.DataSource.S3DataSource.S3DataType", ti["DataSource"]["S3DataSource"]["S3DataType"],
                 ("S3Prefix", "ManifestFile"))):
            if value not in supported:
                raise SpecError(field_, f"{value} is not supported locally",
                                f"{' or '.join(supported)}; run other values on SageMaker")
        run = _JobRun(self, spec, model, threading.Event())
        run.objects = run.list_objects()
        created = _now()
        state = {**spec, "TransformJobArn": self.arn("transform-job", name), "TransformJobStatus": "InProgress",
                 "CreationTime": _iso(created), "LastModifiedTime": _iso(created),
                 # Not a DescribeTransformJob field: who runs the job, to tell a dead run from a live one.
                 "LocalOwner": Owner.current().to_json()}
        if not self.storage.put_if_absent(self._state_uri(name), json.dumps(state, indent=1, sort_keys=True).encode()):
            raise ResourceInUse(f"Job name {name!r} must be unique within an AWS account and region, and a job "
                                "with this name already exists; choose another TransformJobName")
        run.state = state
        self._stops[name] = run.stop
        return run

    def launch_transform_job(self, spec: dict) -> str:
        """CreateTransformJob as the service answers it: checked and created now (SpecError,
        ResourceInUse, an empty input raise here), run in a thread of this process; its ARN.
        close() waits for it."""
        run = self.start_transform_job(spec)
        name = spec["TransformJobName"]
        t = threading.Thread(target=self._run_logged, args=(run,), name=f"transform-job-{name}", daemon=True)
        self._background[name] = t
        t.start()
        return run.state["TransformJobArn"]

    def _run_logged(self, run: _JobRun) -> None:
        try:
            self.run_started(run)
        except Exception:  # run_started already ends the job Failed; this keeps the thread's death visible
            log.exception("transform job %s", run.spec["TransformJobName"])

    def run_started(self, run: _JobRun) -> dict:
        """Run a job start_transform_job created, to its end; the final describe dict."""
        state, name = run.state, run.spec["TransformJobName"]
        try:
            state["TransformStartTime"] = _iso(_now())
            status, reason = run.execute()
        except Exception as e:  # a runtime fault must still end the job, as the service's "Internal error"
            log.exception("transform job %s: internal error", name)
            status, reason = "Failed", f"InternalServerError: {type(e).__name__}: {e}"
        finally:
            self._stops.pop(name, None)
            self.storage.write_text(self._log_uri(name), "".join(line + "\n" for line in run.log_lines))
            if run.stop_requested_elsewhere():
                self.storage.delete(self._stop_uri(name))
        ended = _now()
        state.update(TransformJobStatus=status, TransformEndTime=_iso(ended), LastModifiedTime=_iso(ended))
        if reason:
            state["FailureReason"] = reason[:1024]
        if run.timings:
            # Not a DescribeTransformJob field: where the local wall time went (bench, manifest).
            state["LocalTimings"] = run.timings
        self._save(state)
        return self.describe_transform_job(name)


class _JobRun:
    """One job's execution: list, distribute, process per object, record failures."""

    def __init__(self, rt: LocalRuntime, spec: dict, model: _Model, stop: threading.Event):
        self.rt, self.spec, self.model, self.stop = rt, spec, model, stop
        self.log_lines: list[str] = []
        self.failures: list[tuple[_Object, str]] = []
        self.written: list[str] = []
        self.timings: dict = {}
        self.job_start = iso_second(_now())
        self._lock = threading.Lock()
        self.objects: list[_Object] = []
        self.state: dict = {}
        self.objects_total = 0
        self.objects_ended = 0

    def sm_log(self, message: str) -> None:
        line = f"{iso_millis(datetime.now(UTC))}:[sagemaker logs]: {message}"
        with self._lock:
            self.log_lines.append(line)
        log.info(line)

    def execute(self) -> tuple[str, str | None]:
        objects = self.objects
        n = self.spec["TransformResources"]["InstanceCount"]
        self.objects_total = len(objects)
        shares = [s for s in distribute(objects, n) if s]
        env, conc = server_plan(self.spec, self.model.environment, len(shares))
        t0 = time.perf_counter()
        containers = self.rt._servers_for(self.model, env, conc, len(shares))
        try:
            with ThreadPoolExecutor(max_workers=max(1, len(containers))) as pool:
                started = list(pool.map(self._start, containers))
                bad = [e for e in started if e]
                if bad:
                    return "Failed", str(bad[0])
                t1 = time.perf_counter()
                list(pool.map(self.run_instance, containers, shares))
                self.timings = {"ContainerStartSeconds": round(t1 - t0, 3),
                                "ProcessingSeconds": round(time.perf_counter() - t1, 3)}
        finally:
            for c in containers:
                c.close()
        if self.stop.is_set() or self.stop_requested_elsewhere():
            for uri in self.written:
                self.rt.storage.delete(uri)
            return "Stopped", None
        if self.failures:
            obj, why = min(self.failures, key=lambda f: f[0].uri)
            return "Failed", (f"ClientError: {len(self.failures)} of {len(objects)} input object(s) failed; first "
                              f"{obj.log_name}: {why}. See job logs for more information")
        return "Completed", None

    def stop_requested_elsewhere(self) -> bool:
        """Whether another process asked this job to stop (LocalRuntime.stop_transform_job); sets
        `stop` so requests in flight unwind. Read once per object: one stat, or one HEAD on S3."""
        if self.rt.storage.exists(self.rt._stop_uri(self.spec["TransformJobName"])):
            self.stop.set()
            return True
        return False

    def _start(self, c: Container):
        try:
            c.wait_ready()
        except ContainerError as e:
            self.sm_log(str(e))
            for line in e.detail.splitlines():
                self.sm_log(f"model server: {line}")
            return e
        return None

    def list_objects(self) -> list[_Object]:
        """The job's input objects, checked as CreateTransformJob does: an input with no
        object, a manifest that cannot be read, or a key that leaves its prefix is refused
        (SpecError, the service's ValidationException)."""
        src = self.spec["TransformInput"]["DataSource"]["S3DataSource"]
        uri, kind = src["S3Uri"], src["S3DataType"]
        field_ = "TransformInput.DataSource.S3DataSource.S3Uri"
        if not st.is_s3(uri):
            uri = st.as_uri(uri)  # a relative path names outputs by the key under it, not by a cut of "./"
        if kind == "S3Prefix":
            out = []
            try:
                for info in self.rt.storage.list(uri):
                    rel = info.uri[len(uri):].lstrip("/") or info.uri.rsplit("/", 1)[-1]
                    out.append(_Object(info.uri, rel, _log_name(info.uri)))
            except st.StorageError as e:  # a missing bucket, no s3:ListBucket: the service's create refuses it
                raise SpecError(field_, f"cannot list {src['S3Uri']}: {e}",
                                "the bucket must exist in this region and be listable") from e
        else:
            try:
                out = self._manifest(uri)
            except (DataError, st.StorageError) as e:
                raise SpecError(field_, str(e)) from e
        if not out:
            raise SpecError(field_, f'No S3 objects found under S3 URL "{src["S3Uri"]}" given in input data source. '
                            "Please ensure that the bucket exists in the selected region, and that objects exist "
                            "under that S3 prefix")
        return _confined(out, field_)

    def _manifest(self, uri: str) -> list[_Object]:
        """`[{"prefix": "s3://b/p/"}, "rel/1", ...]`: each entry is prefix + relative key (BOTO);
        the output is named by the relative key (the service's naming is unknown, BTS §2.1).
        An entry that would leave the prefix (`..`, an absolute key) is refused."""
        try:
            doc = json.loads(self.rt.storage.read_bytes(uri))
            prefix = doc[0]["prefix"]
            rels = doc[1:]
        except (ValueError, LookupError, TypeError) as e:
            raise DataError(uri, "not a manifest", _MANIFEST_SHAPE) from e
        if not isinstance(prefix, str) or not all(isinstance(r, str) for r in rels):
            raise DataError(uri, "not a manifest: the prefix and every entry must be strings", _MANIFEST_SHAPE)
        if not st.is_s3(prefix):
            prefix = st.as_uri(prefix)
        for i, r in enumerate(rels, 1):
            if _escapes(r):
                raise DataError(uri, f"manifest entry {i} {r!r} must stay under the prefix {prefix} (no '..' "
                                     "segment, no absolute key)", "list keys relative to the manifest's prefix")
        return [_Object(prefix + r, r, _log_name(prefix + r)) for r in rels]

    def run_instance(self, c: Container, objects: list[_Object]) -> None:
        params = c.execution_parameters()
        mct, mpm, bs = resolve_batch_parameters(self.spec, params)
        self.sm_log(f"MaxConcurrentTransforms={mct}, MaxPayloadInMB={mpm}, "
                    f"BatchStrategy={_BATCH_STRATEGY_ENV[bs]}")
        proc = dp.Processing.from_spec(self.spec, bs, mpm, self.rt.settings, self.job_start)
        mcc = self.spec.get("ModelClientConfig") or {}
        cfg = ClientConfig(float(mcc.get("InvocationsTimeoutInSeconds", C.INVOCATIONS_TIMEOUT_S_DEFAULT)),
                           int(mcc.get("InvocationsMaxRetries", C.INVOCATIONS_MAX_RETRIES_DEFAULT)),
                           self.rt.settings.retry_client_errors, chunked=mpm == 0)
        # Requests share one pool of MCT slots; up to MCT objects are open at once, so the
        # slots fill from the next objects while one object waits (divergence 2 in batch_transform/README.md),
        # and memory holds at most MCT objects.
        with ThreadPoolExecutor(max_workers=mct) as requests, ThreadPoolExecutor(max_workers=mct) as opened:
            def one(obj: _Object) -> None:
                if self.stop.is_set() or self.stop_requested_elsewhere():
                    return
                self.process_object(c, obj, proc, cfg, requests)
                self._ended_one()

            for f in [opened.submit(one, obj) for obj in objects]:
                f.result()

    def _ended_one(self) -> None:
        with self._lock:
            self.objects_ended += 1
            done = self.objects_ended
        if self.rt.progress is not None:
            self.rt.progress(done, self.objects_total)

    def process_object(self, c: Container, obj: _Object, proc: dp.Processing, cfg: ClientConfig, pool) -> None:
        try:
            data = self.rt.storage.read_bytes(obj.uri)
            if self.spec["TransformInput"]["CompressionType"] == "Gzip":
                try:
                    data = gzip.decompress(data)
                except (OSError, EOFError, zlib.error) as e:
                    raise DataError(obj.uri, f"CompressionType=Gzip but the object is not valid gzip ({e})",
                                    "compress the object or set CompressionType None") from e
            prepared = dp.prepare(obj.uri, data, proc)

            def send(b: dp.MiniBatch) -> bytes:
                if self.stop.is_set():
                    raise StopRequested()
                return c.invoke(b.payload, proc.content_type, proc.accept, cfg)

            responses = list(pool.map(send, prepared.batches))
            out = dp.assemble(prepared, responses, proc)
            out_uri = st.join(self.spec["TransformOutput"]["S3OutputPath"], obj.relative) + ".out"
            self.rt.storage.write_bytes(out_uri, out)
            with self._lock:
                self.written.append(out_uri)
        except StopRequested:
            return
        except InvocationFailed as e:
            if e.status is None:
                self.sm_log(f"{obj.log_name}: {e.body}")
                self._fail(obj, e.body)
            else:
                self.sm_log(f"{obj.log_name}: ClientError: {e.status}")
                self.sm_log(f"{obj.log_name}: ")
                self.sm_log(f"{obj.log_name}: Message:")
                for line in e.body.splitlines() or [""]:
                    self.sm_log(f"{obj.log_name}: {line}")
                self._fail(obj, f"the model container answered HTTP {e.status}")
        except (DataError, st.StorageError) as e:
            self.sm_log(f"{obj.log_name}: ClientError: {e}")
            self._fail(obj, str(e))

    def _fail(self, obj: _Object, why: str) -> None:
        with self._lock:
            self.failures.append((obj, why))


def _server_key(model: _Model, env: dict[str, str], conc: int) -> tuple:
    return model.name, model.model_dir, tuple(sorted(env.items())), conc


def _escapes(key: str) -> bool:
    """A key that would leave its prefix once used as a path: absolute, or with a `..` segment."""
    return key.startswith("/") or ".." in key.split("/")


def _confined(objects: list[_Object], field_: str) -> list[_Object]:
    """Every output name stays under S3OutputPath: S3 keys are literal on the service, but a
    `..` segment would walk out of a local directory."""
    for o in objects:
        if _escapes(o.relative):
            raise SpecError(field_, f"input {o.log_name} gives the output name {o.relative!r}, which must stay "
                                    "under the prefix (no '..' segment, no absolute key)",
                            "rename the object or point S3Uri below it")
    return objects


def _log_name(uri: str) -> str:
    """bucket/key for S3 (as the service logs it), the path otherwise."""
    if uri.startswith("s3://"):
        return uri[len("s3://"):]
    return str(st.local_path(uri))
