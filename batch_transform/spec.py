"""The job spec: a CreateTransformJob request (the `aws sagemaker create-transform-job
--cli-input-json` JSON), validated against the service's limits before anything runs.

Types, enums, lengths, ranges and patterns are read from botocore's `sagemaker` service
model, so the instance types and enums follow the installed botocore. botocore's client
only checks types and minimums (stack notes), hence this module. The cross-field rules
the model cannot express (BTS §1.1, §1.6, §9) are checked after.
"""

from __future__ import annotations

import copy
import functools
import re

from velibcast import constants as C
from velibcast.batch_transform import jsonpath
from velibcast.batch_transform.dataplane import DATA_PROCESSING_TYPES, JSON, media_type
from velibcast.errors import ConfigError


class SpecError(ConfigError):
    """A job spec field violates a service limit. `field` is its dotted path."""

    def __init__(self, field: str, problem: str, limit: str = ""):
        self.field = field
        self.limit = limit
        msg = f"{field}: {problem}"
        if limit:
            msg += f" (limit: {limit})"
        super().__init__(msg)


@functools.lru_cache(maxsize=1)
def service_model():
    import botocore.session  # lazy: botocore's service model loads in ~0.3 s, only when a spec is validated

    return botocore.session.get_session().get_service_model("sagemaker")


def _check_count(shape, value, path: str, what: str) -> None:
    """A map's or a list's length against the service model's `max`."""
    md = shape.metadata
    if "max" in md and len(value) > md["max"]:
        raise SpecError(path, f"has {len(value)} {what}", f"at most {md['max']}")


def _check(shape, value, path: str, allow_file_uris: bool) -> None:
    t = shape.type_name
    if t == "structure":
        if not isinstance(value, dict):
            raise SpecError(path, f"must be an object, got {type(value).__name__}")
        for req in shape.required_members:
            if req not in value:
                raise SpecError(_join(path, req), "is required")
        for k, v in value.items():
            if k not in shape.members:
                raise SpecError(_join(path, k), "is not a field of this shape",
                                f"known fields: {', '.join(sorted(shape.members))}")
            _check(shape.members[k], v, _join(path, k), allow_file_uris)
    elif t == "string":
        if not isinstance(value, str):
            raise SpecError(path, f"must be a string, got {type(value).__name__}")
        md = shape.metadata
        if shape.enum and value not in shape.enum:
            raise SpecError(path, f"{value!r} is not allowed", f"one of {', '.join(shape.enum)}")
        if "min" in md and len(value) < md["min"] or "max" in md and len(value) > md["max"]:
            raise SpecError(path, f"length {len(value)} is out of range",
                            f"{md.get('min', 0)}-{md.get('max', 'unbounded')} characters")
        pattern = md.get("pattern")
        local_uri = shape.name == "S3Uri" and (value.startswith("file://") or "://" not in value)
        if pattern and not (allow_file_uris and local_uri):
            try:
                ok = re.fullmatch(pattern, value, re.DOTALL) is not None
            except re.error:
                ok = True  # a Java-only regex (\p{..}); the service checks it
            if not ok:
                raise SpecError(path, f"{value!r} does not match the service pattern", pattern)
    elif t in ("integer", "long"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise SpecError(path, f"must be an integer, got {value!r}")
        md = shape.metadata
        if "min" in md and value < md["min"] or "max" in md and value > md["max"]:
            raise SpecError(path, f"{value} is out of range", f"{md.get('min', '-inf')}-{md.get('max', 'unbounded')}")
    elif t == "boolean":
        if not isinstance(value, bool):
            raise SpecError(path, f"must be true or false, got {value!r}")
    elif t == "map":
        if not isinstance(value, dict):
            raise SpecError(path, "must be an object")
        _check_count(shape, value, path, "entries")
        for k, v in value.items():
            _check(shape.key, k, f"{path} key {k!r}", allow_file_uris)
            _check(shape.value, v, f"{path}.{k}", allow_file_uris)
    elif t == "list":
        if not isinstance(value, list):
            raise SpecError(path, "must be a list")
        _check_count(shape, value, path, "items")
        for i, v in enumerate(value):
            _check(shape.member, v, f"{path}[{i}]", allow_file_uris)


def validate_request(operation: str, body: dict) -> None:
    """Check any SageMaker request against its input shape in botocore's model (the local
    SageMaker API's other operations; CreateTransformJob goes through validate_job_spec)."""
    _check(service_model().operation_model(operation).input_shape, body, "", False)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def validate_job_spec(d: dict, *, allow_file_uris: bool = True, multi_range_filters: str = "fail_object") -> dict:
    """Check `d` against CreateTransformJob's limits; return a copy with the defaults the
    service echoes in DescribeTransformJob filled (BTS §1.1). BatchStrategy, MaxPayloadInMB
    and MaxConcurrentTransforms stay unset when unset: the container may choose them.

    `allow_file_uris` admits `file://` URIs and plain paths as S3Uri/S3OutputPath, for the
    local runtime only. `multi_range_filters="refuse"` refuses several slices in one bracket
    here; by default they pass, as on the service, and fail each object (jsonpath.py).
    """
    _check(service_model().operation_model("CreateTransformJob").input_shape, d, "", allow_file_uris)
    out = copy.deepcopy(d)
    if len(out["TransformJobName"]) > C.JOB_NAME_MAX_LEN or not re.fullmatch(C.JOB_NAME_PATTERN, out["TransformJobName"]):
        raise SpecError("TransformJobName", f"{out['TransformJobName']!r} is not a valid job name",
                        f"1-{C.JOB_NAME_MAX_LEN} characters matching {C.JOB_NAME_PATTERN}")

    mct = out.get("MaxConcurrentTransforms")
    mpm = out.get("MaxPayloadInMB")
    if mpm is not None and not C.MAX_PAYLOAD_MB_MIN <= mpm <= C.MAX_PAYLOAD_MB_MAX:
        raise SpecError("MaxPayloadInMB", f"{mpm} is out of range", f"{C.MAX_PAYLOAD_MB_MIN}-{C.MAX_PAYLOAD_MB_MAX}")
    # The product is checked with the default payload when MaxPayloadInMB is unset: MCT 50
    # alone asks for 50 x 6 MB in flight (divergence 11 in batch_transform/README.md).
    payload = C.DEFAULT_MAX_PAYLOAD_MB if mpm is None else mpm
    if mct and mct * payload > C.PAYLOAD_X_CONCURRENCY_MAX_MB:
        shown = f"{payload} (default)" if mpm is None else f"{payload}"
        raise SpecError("MaxConcurrentTransforms", f"{mct} x MaxPayloadInMB {shown} = {mct * payload}",
                        f"MaxConcurrentTransforms x MaxPayloadInMB <= {C.PAYLOAD_X_CONCURRENCY_MAX_MB}")

    res = out["TransformResources"]
    if not C.INSTANCE_COUNT_MIN <= res["InstanceCount"] <= C.INSTANCE_COUNT_MAX:
        raise SpecError("TransformResources.InstanceCount", f"{res['InstanceCount']} is out of range",
                        f"{C.INSTANCE_COUNT_MIN}-{C.INSTANCE_COUNT_MAX}")

    mcc = out.get("ModelClientConfig")
    if mcc is not None:
        for key, lo, hi in (("InvocationsTimeoutInSeconds", C.INVOCATIONS_TIMEOUT_S_MIN, C.INVOCATIONS_TIMEOUT_S_MAX),
                            ("InvocationsMaxRetries", C.INVOCATIONS_MAX_RETRIES_MIN, C.INVOCATIONS_MAX_RETRIES_MAX)):
            if key in mcc and not lo <= mcc[key] <= hi:
                raise SpecError(f"ModelClientConfig.{key}", f"{mcc[key]} is out of range", f"{lo}-{hi}")

    env = out.get("Environment") or {}
    if len(env) > C.ENVIRONMENT_MAX_ENTRIES:
        raise SpecError("Environment", f"has {len(env)} entries", f"at most {C.ENVIRONMENT_MAX_ENTRIES}")

    dp = out.setdefault("DataProcessing", {})
    for key in ("InputFilter", "OutputFilter"):
        expr = dp.setdefault(key, "$")
        if len(expr) > C.FILTER_MAX_LEN:
            raise SpecError(f"DataProcessing.{key}", f"is {len(expr)} characters", f"at most {C.FILTER_MAX_LEN}")
        try:
            path = jsonpath.parse(expr or "$")  # the service model allows length 0: no filter
        except jsonpath.JsonPathError as e:
            raise SpecError(f"DataProcessing.{key}", str(e),
                            "supported operators: $ .name * ['a','b'] [i,j] [start:end] (one range per bracket)") from e
        if path.multi_range and multi_range_filters == "refuse":
            raise SpecError(f"DataProcessing.{key}", f"{expr!r}: {jsonpath.MULTI_RANGE_MESSAGE}",
                            "one range per bracket (setting multi_range_filters=refuse)")
    dp.setdefault("JoinSource", "None")

    ti = out["TransformInput"]
    ti.setdefault("CompressionType", "None")
    ti.setdefault("SplitType", "None")
    out["TransformOutput"].setdefault("AssembleWith", "None")
    _check_data_processing(out)
    return out


def _check_data_processing(spec: dict) -> None:
    """The developer guide's rules for filters and joins (BTS §3.1, DG-DP): a filtered or
    joined format must be CSV, JSON or JSON Lines; a join needs Accept equal to ContentType,
    and records that are lines (CSV, JSON Lines, SplitType=Line) need AssembleWith=Line, or
    the joined records are glued together (divergence 4 in batch_transform/README.md)."""

    dp, ti, to = spec["DataProcessing"], spec["TransformInput"], spec["TransformOutput"]
    supported = ", ".join(DATA_PROCESSING_TYPES)
    ct, accept = media_type(ti.get("ContentType")), media_type(to.get("Accept"))
    join = dp["JoinSource"] == "Input"
    if (join or (dp["InputFilter"] or "$") != "$") and ct not in DATA_PROCESSING_TYPES:
        raise SpecError("TransformInput.ContentType", f"{ti.get('ContentType')!r} cannot be filtered or joined",
                        f"one of {supported}")
    if not join:
        if (dp["OutputFilter"] or "$") != "$" and accept not in DATA_PROCESSING_TYPES:
            raise SpecError("TransformOutput.Accept", f"{to.get('Accept')!r} cannot be filtered", f"one of {supported}")
        return
    if accept != ct:
        raise SpecError("TransformOutput.Accept", f"{to.get('Accept')!r} differs from ContentType with JoinSource=Input",
                        f"Accept equal to ContentType ({ti.get('ContentType')})")
    if (ct != JSON or ti["SplitType"] == "Line") and to["AssembleWith"] != "Line":
        raise SpecError("TransformOutput.AssembleWith", f"{to['AssembleWith']} with JoinSource=Input glues the "
                        "joined records together", "Line when records are lines (CSV, JSON Lines, SplitType=Line)")
