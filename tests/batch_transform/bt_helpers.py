"""Helpers for the Batch Transform tests: a job spec of the nightly's shape, input files, outputs, logs."""

from typing import Any

from velibcast.storage import join


def job_spec(name: str, input_uri: str, output_uri: str, **over) -> dict:
    """A CreateTransformJob request with the nightly's shape; keyword groups override."""
    spec: dict[str, Any] = {
        "TransformJobName": name,
        "ModelName": "test-model",
        "TransformInput": {
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": input_uri}},
            "ContentType": "text/csv",
            "SplitType": "Line",
        },
        "TransformOutput": {"S3OutputPath": output_uri, "Accept": "text/csv", "AssembleWith": "Line"},
        "TransformResources": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1},
    }
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(spec.get(k), dict):
            spec[k] = {**spec[k], **v}
        else:
            spec[k] = v
    return spec


def put(storage, base, files: dict):
    for rel, data in files.items():
        storage.write_bytes(join(base, rel), data if isinstance(data, bytes) else data.encode())


def outputs(storage, base) -> dict:
    """The objects under `base`/ (a folder: `out2/...` is not under `out`), by relative key."""
    return {o.uri[len(base):].lstrip("/"): storage.read_bytes(o.uri).decode() for o in storage.list(base + "/")}


def log_of(rt, name) -> str:
    return rt.storage.read_text(join(rt.state_root, "transform-jobs", f"{name}.log"))
