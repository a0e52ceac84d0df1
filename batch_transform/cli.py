"""`velibcast transform-job run|describe|list|stop` and `velibcast serve`.

    velibcast transform-job run --cli-input-json job.json --model-data MODEL_TAR_GZ_URI
    velibcast transform-job describe NAME [--config YAML]   # jobs of the config's store, as `velibcast run` left them
    velibcast transform-job list [--config YAML]
    velibcast transform-job stop NAME [--config YAML]       # a local job, whichever process runs it
    velibcast serve --model-dir DIR [--port P] [--host H]   (127.0.0.1 unless --host)
    velibcast sagemaker-api --port N [--host H]             # jobs kept where `transform-job list` looks

job.json is what `aws sagemaker create-transform-job --cli-input-json` takes. The local
runtime is the default backend; `--backend sagemaker --role-arn ARN` runs the same spec
on SageMaker. Data plane choices the sources leave open are set with `--setting k=v`.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import datetime
from pathlib import Path

from velibcast.batch_transform import server
from velibcast.batch_transform.dataplane import DataPlaneSettings
from velibcast.batch_transform.errors import ResourceNotFound
from velibcast.batch_transform.sagemaker_backend import SageMakerBackend
from velibcast.config import load_config
from velibcast.errors import ConfigError
from velibcast.storage import Storage
from velibcast.timeutil import clock, iso_second


def register(subparsers) -> None:
    tj = subparsers.add_parser("transform-job", help="run, describe, list or stop Batch Transform jobs")
    tj_sub = tj.add_subparsers(dest="transform_command", required=True)

    run = tj_sub.add_parser("run", help="create a transform job from CreateTransformJob JSON and run it")
    run.add_argument("--cli-input-json", required=True, help="job.json or file://job.json (CreateTransformJob shape)")
    run.add_argument("--model-data", required=True, help="model.tar.gz URI (s3://, file:// or a path)")
    _common(run)
    run.add_argument("--backend", choices=["local", "sagemaker"], default="local")
    run.add_argument("--role-arn", help="SageMaker execution role (sagemaker backend)")
    run.add_argument("--region", help="AWS region (sagemaker backend; default: the AWS chain's)")
    run.add_argument("--setting", action="append", default=[], metavar="NAME=VALUE",
                     help="a DataPlaneSettings field, e.g. slice_end_inclusive=false (local backend)")
    run.set_defaults(func=cmd_run)

    desc = tj_sub.add_parser("describe", help="print DescribeTransformJob JSON")
    desc.add_argument("name")
    _common(desc)
    desc.add_argument("--backend", choices=["local", "sagemaker"], default="local")
    desc.add_argument("--region")
    desc.set_defaults(func=cmd_describe)

    stop = tj_sub.add_parser("stop", help="stop a local job that any process runs on this store: it sends no "
                                          "further request, removes its outputs and ends Stopped")
    stop.add_argument("name")
    _common(stop)
    stop.set_defaults(func=cmd_stop)

    ls = tj_sub.add_parser("list", help="list the local jobs of the configured store, newest first")
    _common(ls)
    ls.set_defaults(func=cmd_list)

    srv = subparsers.add_parser("serve", help="serve a model directory with the SageMaker container contract")
    server.add_arguments(srv)
    srv.set_defaults(func=cmd_serve)

    api = subparsers.add_parser("sagemaker-api", help="a local SageMaker API endpoint (CreateModel, CreateTransformJob, "
                                                      "...) that runs jobs with the local runtime against S3")
    api.add_argument("--port", type=int, required=True, help="port to listen on (0 picks a free one)")
    api.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: no authentication)")
    _common(api)
    api.add_argument("--setting", action="append", default=[], metavar="NAME=VALUE",
                     help="a DataPlaneSettings field, as for transform-job run")
    api.set_defaults(func=cmd_sagemaker_api)


def _common(p) -> None:
    p.add_argument("--config", default="configs/local.yaml", metavar="YAML",
                   help="run configuration whose store holds the jobs (default: configs/local.yaml)")
    p.add_argument("--state-root", default=os.environ.get("VELIBCAST_STATE_ROOT"),
                   help="where the local runtime keeps job state (a path or s3:// URI); default: the config's "
                        "store.root, where `velibcast run` puts its jobs")


def _state_root(args) -> str:
    """The jobs `velibcast run` started live under the configured store; --state-root overrides."""
    if args.state_root:
        return args.state_root

    return load_config(args.config).root


def _local_runtime(args, settings=None, progress=None):
    # lazy, per command: the runtime (~0.4 s) only for commands that run or list jobs
    from velibcast.batch_transform.local import LocalRuntime

    return LocalRuntime(Storage(), _state_root(args), settings, progress=progress)


def print_progress(ended: int, total: int) -> None:
    """One stderr line per input object as it ends: a long job is never silent (stdout keeps the JSON)."""
    print(f"{clock(datetime.now())} transform: {ended}/{total} input objects done", file=sys.stderr, flush=True)


def parse_settings(pairs: list[str]):
    d = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep:
            raise ConfigError(f"--setting {pair!r}: expected NAME=VALUE")
        try:
            d[key] = json.loads(raw)
        except ValueError:
            d[key] = raw
    try:
        return DataPlaneSettings.from_dict(d)
    except ValueError as e:
        raise ConfigError(f"--setting: {e}") from e


def _read_spec(arg: str) -> dict:
    uri = arg[len("file://"):] if arg.startswith("file://") and not arg.startswith("file:///") else arg
    try:
        return json.loads(Storage().read_text(uri))
    except ValueError as e:
        raise ConfigError(f"--cli-input-json {arg}: not JSON ({e})") from e


def _print(d: dict) -> None:
    print(json.dumps(d, indent=2, default=lambda v: v.isoformat() if hasattr(v, "isoformat") else str(v)))


def cmd_run(args) -> int:
    spec = _read_spec(args.cli_input_json)
    if args.backend == "sagemaker":

        backend = SageMakerBackend(region=args.region, role_arn=args.role_arn)
    else:
        backend = _local_runtime(args, parse_settings(args.setting), progress=print_progress)
    try:
        backend.create_model(spec.get("ModelName", ""), args.model_data)
        d = backend.create_transform_job(spec)
    finally:
        getattr(backend, "close", lambda: None)()
    _print(d)
    return 0 if d["TransformJobStatus"] == "Completed" else 1


def cmd_describe(args) -> int:
    if args.backend == "sagemaker":

        d = SageMakerBackend(region=args.region).describe_transform_job(args.name)
    else:
        runtime = _local_runtime(args)
        d = _on_local_job(runtime, args.name, runtime.describe_transform_job)
    _print(d)
    return 0


def cmd_stop(args) -> int:
    runtime = _local_runtime(args)
    _on_local_job(runtime, args.name, runtime.stop_transform_job)
    status = runtime.describe_transform_job(args.name)["TransformJobStatus"]
    print(f"{args.name}: {status}; it ends Stopped, its outputs removed, before its next input object "
          f"(`velibcast transform-job describe {args.name}` follows it)")
    return 0


def _on_local_job(runtime, name: str, call):
    try:
        return call(name)
    except ResourceNotFound:
        raise ResourceNotFound(f"no transform job {name!r} under {runtime.state_root}/transform-jobs; "
                               "give the --config of the run that started it (or --state-root); "
                               "`velibcast transform-job list` shows the jobs there") from None


def cmd_list(args) -> int:
    runtime = _local_runtime(args)
    jobs = runtime.list_transform_jobs()
    jobs.sort(key=lambda d: d["CreationTime"], reverse=True)
    print(f"{len(jobs)} transform jobs under {runtime.state_root}/transform-jobs")
    for d in jobs:
        print(f"{d['TransformJobName']}  {d['TransformJobStatus']}  created {iso_second(d['CreationTime'])}")
    return 0


def cmd_serve(args) -> int:
    model_dir = Path(args.model_dir)
    if model_dir.is_file():
        raise ConfigError(f"--model-dir {model_dir} is a file; serve takes the extracted model: "
                          f"mkdir model && tar -xzf {model_dir} -C model, then --model-dir model")
    server.serve(args.model_dir, args.port, args.host)
    return 0


def cmd_sagemaker_api(args) -> int:
    from velibcast.batch_transform import sagemaker_api  # lazy: per command, the API server only when started

    sagemaker_api.serve(args.port, args.host, _state_root(args), parse_settings(args.setting))
    return 0
