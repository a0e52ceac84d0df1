"""The IAM policies in configs/iam/ against the AWS operations the product code calls.

The calls are found statically: every module that builds a boto3 client is scanned for
the client's operation names, used as methods (`s3.put_object`), passed as bound methods
(`_s3_call(uri, "GET", self.s3.get_object, ...)`), named in strings (`getattr(client, op)`,
`get_paginator("list_objects_v2")`). Each is mapped to its IAM action; the runner policy
must allow exactly those. Resources are then checked with a small evaluator on the object
keys the code really builds for configs/aws.yaml.
"""

import ast
import json
from datetime import date, datetime
from fnmatch import fnmatchcase
from functools import cache
from pathlib import Path

import pytest

from velibcast import storage as st
from velibcast.config import CONFIG_DIR, load_config
from velibcast.flows import forecasts, manifest
from velibcast.flows.products import PRODUCTS
from velibcast.timeutil import UTC

REPO_ROOT = Path(__file__).resolve().parents[2]

PRODUCT_DIRS = ("velibcast", "datasets", "batch_transform", "flows", "training")
RUNNER = CONFIG_DIR / "iam" / "runner-policy.json"
EXECUTION = CONFIG_DIR / "iam" / "sagemaker-execution-role-policy.json"
AWS_CLIENT_MODULES = ("boto3", "botocore", "aioboto3")
SERVICE_PREFIX = {"s3": "s3", "sagemaker": "sagemaker", "logs": "logs", "sts": "sts", "cloudwatch": "cloudwatch"}

# S3 operations whose IAM action is not named after them (Amazon S3 "Actions" reference).
S3_ACTIONS = {
    "ListObjectsV2": {"s3:ListBucket"}, "ListObjects": {"s3:ListBucket"}, "HeadBucket": {"s3:ListBucket"},
    "HeadObject": {"s3:GetObject"}, "GetObject": {"s3:GetObject"},
    # If-None-Match conditional writes are PutObject too; multipart parts are authorised by PutObject.
    "PutObject": {"s3:PutObject"}, "CreateMultipartUpload": {"s3:PutObject"}, "UploadPart": {"s3:PutObject"},
    "CompleteMultipartUpload": {"s3:PutObject"}, "AbortMultipartUpload": {"s3:AbortMultipartUpload"},
    "CopyObject": {"s3:GetObject", "s3:PutObject"},
    "DeleteObject": {"s3:DeleteObject"}, "DeleteObjects": {"s3:DeleteObject"},
}
# boto3's transfer helpers are not service operations.
S3_TRANSFER = {"upload_file": "PutObject", "upload_fileobj": "PutObject",
               "download_file": "GetObject", "download_fileobj": "GetObject"}
# Operations that pass a role to the service need iam:PassRole as well.
PASSES_ROLE = {"CreateModel"}   # ExecutionRoleArn


# ---------------------------------------------------------------- finding the calls
@cache
def _operations(service: str) -> dict[str, str]:
    import botocore.session
    from botocore import xform_name

    model = botocore.session.get_session().get_service_model(service)
    # One-word operations (sagemaker Search) cannot be told from ordinary names (re.search).
    return {xform_name(op): op for op in model.operation_names if "_" in xform_name(op)}


def _imports_aws_sdk(tree: ast.AST) -> bool:
    for n in ast.walk(tree):
        if isinstance(n, ast.Import) and any(a.name.split(".")[0] in AWS_CLIENT_MODULES for a in n.names):
            return True
        if isinstance(n, ast.ImportFrom) and (n.module or "").split(".")[0] in AWS_CLIENT_MODULES:
            return True
    return False


def _client_services(tree: ast.AST, where: str) -> set[str]:
    """Services of the clients a module builds: `<x>.client("s3", ...)`."""
    out = set()
    for n in ast.walk(tree):
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == "client":
            arg = n.args[0] if n.args else next((k.value for k in n.keywords if k.arg == "service_name"), None)
            if not (isinstance(arg, ast.Constant) and isinstance(arg.value, str)):
                raise AssertionError(f"{where}:{n.lineno}: client service is not a literal; the IAM scan cannot tell it")
            out.add(arg.value)
    return out


def scan_module(source: str, where: str) -> dict[tuple[str, str], list[str]]:
    """(service, Operation) -> lines, for one module; empty unless it imports an AWS SDK."""
    tree = ast.parse(source, where)
    found: dict[tuple[str, str], list[str]] = {}
    if not _imports_aws_sdk(tree):
        return found
    services = _client_services(tree, where)
    for n in ast.walk(tree):
        if isinstance(n, ast.Attribute):
            name = n.attr
        elif isinstance(n, ast.Constant) and isinstance(n.value, str):
            name = n.value
        else:
            continue
        for svc in services:
            op = S3_TRANSFER.get(name) if svc == "s3" and name in S3_TRANSFER else _operations(svc).get(name)
            if op:
                found.setdefault((svc, op), []).append(f"{where}:{n.lineno}")
    return found


def find_aws_calls() -> dict[tuple[str, str], list[str]]:
    """(service, Operation) -> where, over every product module that builds an AWS client."""
    found: dict[tuple[str, str], list[str]] = {}
    for d in PRODUCT_DIRS:
        for path in sorted((REPO_ROOT / d).rglob("*.py")):
            for key, where in scan_module(path.read_text(), str(path.relative_to(REPO_ROOT))).items():
                found.setdefault(key, []).extend(where)
    return found


def iam_actions(calls) -> dict[str, set[str]]:
    """IAM action -> the operations that need it."""
    out: dict[str, set[str]] = {}
    for svc, op in calls:
        if svc == "s3":
            if op not in S3_ACTIONS:
                raise AssertionError(f"S3 operation {op} is called; add its IAM action(s) to S3_ACTIONS")
            actions = S3_ACTIONS[op]
        else:
            actions = {f"{SERVICE_PREFIX[svc]}:{op}"}
        if svc == "sagemaker" and op in PASSES_ROLE:
            actions = actions | {"iam:PassRole"}
        for a in actions:
            out.setdefault(a, set()).add(f"{svc}.{op}")
    return out


def load(path) -> dict:
    return json.loads(path.read_text())


def actions_of(policy: dict) -> set[str]:
    out = set()
    for s in policy["Statement"]:
        acts = s["Action"] if isinstance(s["Action"], list) else [s["Action"]]
        out.update(acts)
    return out


# ---------------------------------------------------------------- a small evaluator
def allows(policy: dict, action: str, resource: str, context: dict | None = None) -> bool:
    """Allow-only evaluation: action and resource match, and every condition holds."""
    context = context or {}
    for s in policy["Statement"]:
        acts = s["Action"] if isinstance(s["Action"], list) else [s["Action"]]
        res = s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]]
        if s["Effect"] != "Allow" or not any(fnmatchcase(action.lower(), a.lower()) for a in acts):
            continue
        if not any(fnmatchcase(resource, r) for r in res):
            continue
        ok = True
        for op, conds in s.get("Condition", {}).items():
            for key, want in conds.items():
                want = want if isinstance(want, list) else [want]
                have = context.get(key)
                if have is None:
                    ok = False
                elif op == "StringLike":
                    ok &= any(fnmatchcase(have, w) for w in want)
                elif op == "StringEquals":
                    ok &= have in want
                else:
                    raise AssertionError(f"condition operator {op} is not understood by this test")
        if ok:
            return True
    return False


def s3_arn(uri: str) -> str:
    b, k = st.split_s3(uri)
    return f"arn:aws:s3:::{b}/{k}"


def can_list(policy: dict, prefix_uri: str) -> bool:
    b, k = st.split_s3(prefix_uri)
    return allows(policy, "s3:ListBucket", f"arn:aws:s3:::{b}", {"s3:prefix": k})


# ---------------------------------------------------------------- tests
@pytest.fixture(scope="module")
def calls():
    return find_aws_calls()


@pytest.fixture(scope="module")
def aws_cfg():
    return load_config(CONFIG_DIR / "aws.yaml")


def test_the_scan_finds_methods_bound_methods_strings_and_paginators():
    src = """
import boto3
s3 = boto3.client("s3")
sm = boto3.session.Session().client("sagemaker")
s3.copy_object(Bucket="b", Key="k", CopySource="x")
call(s3.head_object, Bucket="b")
s3.get_paginator("list_objects_v2")
getattr(sm, "stop_transform_job")(TransformJobName="j")
re.search("x", "y")
"""
    calls = scan_module(src, "m.py")
    assert set(calls) == {("s3", "CopyObject"), ("s3", "HeadObject"), ("s3", "ListObjectsV2"),
                          ("sagemaker", "StopTransformJob")}
    assert iam_actions(calls) == {"s3:GetObject": {"s3.CopyObject", "s3.HeadObject"}, "s3:PutObject": {"s3.CopyObject"},
                                  "s3:ListBucket": {"s3.ListObjectsV2"},
                                  "sagemaker:StopTransformJob": {"sagemaker.StopTransformJob"}}
    assert scan_module("import json\nx.put_object()\n", "no_sdk.py") == {}


def test_the_scan_sees_the_known_calls(calls):
    ops = {op for _, op in calls}
    # Storage's own operations: if one disappears from the scan, the scan is broken, not the code.
    assert {"GetObject", "HeadObject", "ListObjectsV2", "PutObject", "DeleteObject"} <= ops, calls
    assert all(svc in SERVICE_PREFIX for svc, _ in calls), f"a client of an unmapped service: {calls}"


@pytest.mark.parametrize("service", ["s3", "sagemaker", "iam", "logs"])
def test_runner_policy_allows_exactly_what_the_code_calls(calls, service):
    needed = {a: why for a, why in iam_actions(calls).items() if a.split(":")[0] == service}
    granted = {a for a in actions_of(load(RUNNER)) if a.split(":")[0] == service}
    missing = {a: sorted(needed[a]) for a in needed.keys() - granted}
    unused = granted - needed.keys()
    where = {a: [loc for op in needed[a] for loc in calls[tuple(op.split("."))]] for a in missing}
    assert not missing, f"configs/iam/runner-policy.json lacks {sorted(missing)}, needed by {where}"
    assert not unused, f"configs/iam/runner-policy.json grants {sorted(unused)}, which no product code calls; remove them"


@pytest.mark.parametrize("path", [RUNNER, EXECUTION])
def test_no_wildcard_actions_or_resources(path):
    policy = load(path)
    assert policy["Version"] == "2012-10-17"
    # AWS offers no resource-level permission for these two; PutMetricData is bound by namespace.
    star_ok = {"ecr:GetAuthorizationToken", "cloudwatch:PutMetricData"}
    for s in policy["Statement"]:
        assert s["Effect"] == "Allow" and not {"NotAction", "NotResource", "NotPrincipal"} & s.keys(), s
        acts = s["Action"] if isinstance(s["Action"], list) else [s["Action"]]
        res = s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]]
        assert all("*" not in a for a in acts), f"{path.name} {s['Sid']}: wildcard action {acts}"
        if "*" in res:
            assert set(acts) <= star_ok, f"{path.name} {s['Sid']}: Resource * for {acts}"
            if "cloudwatch:PutMetricData" in acts:
                assert s["Condition"]["StringEquals"]["cloudwatch:namespace"] == "/aws/sagemaker/TransformJobs"
        for r in res:
            parts = r.split(":")
            # no wildcard partition, service, region, account, bucket
            assert r == "*" or all("*" not in p for p in parts[:5]) and not r.startswith("arn:aws:s3:::*"), r


def test_pass_role_is_limited_to_the_execution_role(aws_cfg):
    policy = load(RUNNER)
    role = aws_cfg.transform.sagemaker.role_arn
    statements = [s for s in policy["Statement"] if "iam:PassRole" in s["Action"]]
    assert len(statements) == 1 and statements[0]["Resource"] == role
    ctx = {"iam:PassedToService": "sagemaker.amazonaws.com"}
    assert allows(policy, "iam:PassRole", role, ctx)
    assert not allows(policy, "iam:PassRole", role, {"iam:PassedToService": "ec2.amazonaws.com"})
    assert not allows(policy, "iam:PassRole", role.replace("VelibcastSageMakerExecution", "Admin"), ctx)


def _run_objects(root: str) -> list[str]:
    from velibcast.flows.publish import lock_uri
    from velibcast.flows.score import accuracy_uri

    d = date(2022, 5, 26)
    run_dir = manifest.run_dir(root, "2022-05-26_abcd1234_lstm-1")
    return [
        *(uri for p in PRODUCTS for uri in (forecasts.partition_uri(root, p, d), lock_uri(root, p, d),
                                            accuracy_uri(root, p, d))),
        manifest.manifest_uri(root, "2022-05-26_abcd1234_lstm-1"),
        st.join(run_dir, "attempts", "2026-01-01T00-00-00.json"), st.join(run_dir, "stages", "windows.json"),
        st.join(run_dir, "windows", "index.parquet"), st.join(run_dir, "report.png"),
        st.join(run_dir, "transform", "input", "part-00000.csv"),
        st.join(run_dir, "transform", "output", "velibcast-2022-05-26-abc", "part-00000.csv.out"),
        st.join(root, "models", "lstm-1", "model.tar.gz"),
    ]


def test_runner_reaches_the_store_and_only_reads_snapshots(aws_cfg):
    from velibcast.datasets.snapshots import snapshot_uri, snapshots_prefix

    policy = load(RUNNER)
    root = aws_cfg.root
    for uri in _run_objects(root):
        for action in ("s3:GetObject", "s3:PutObject", "s3:DeleteObject"):
            assert allows(policy, action, s3_arn(uri)), (action, uri)
    assert can_list(policy, st.join(root, "runs", "x", "transform", "output") + "/")
    assert can_list(policy, st.join(root, "models") + "/")

    snap = snapshot_uri(aws_cfg.snapshots_root, datetime(2022, 5, 26, 3, tzinfo=UTC))
    assert allows(policy, "s3:GetObject", s3_arn(snap))
    assert can_list(policy, st.join(snapshots_prefix(aws_cfg.snapshots_root), "date=2022-05-26") + "/")
    assert not allows(policy, "s3:PutObject", s3_arn(snap))
    assert not allows(policy, "s3:DeleteObject", s3_arn(snap))

    bucket = st.split_s3(root)[0]
    assert not allows(policy, "s3:GetObject", f"arn:aws:s3:::{bucket}/elsewhere/x")
    assert not can_list(policy, f"s3://{bucket}/elsewhere/")
    assert not allows(policy, "s3:GetObject", "arn:aws:s3:::another-bucket/velibcast/x")


def test_runner_sagemaker_resources_match_the_names_the_code_builds(aws_cfg):
    from velibcast import constants as C
    from velibcast.batch_transform.attempts import attempt_name, job_name_for
    from velibcast.flows.stages import model_name_for

    policy = load(RUNNER)
    region = aws_cfg.transform.sagemaker.region
    account = aws_cfg.transform.sagemaker.role_arn.split(":")[4]
    job = attempt_name(job_name_for({"app": C.JOB_NAME_PREFIX, "run": "2022-05-26_abcd1234_lstm-20260101"}), 2)
    model = model_name_for("lstm-20260101T000000")
    for action in ("sagemaker:CreateTransformJob", "sagemaker:DescribeTransformJob"):
        assert allows(policy, action, f"arn:aws:sagemaker:{region}:{account}:transform-job/{job}")
        assert not allows(policy, action, f"arn:aws:sagemaker:{region}:{account}:transform-job/other-job")
    for action in ("sagemaker:CreateModel", "sagemaker:DescribeModel"):
        assert allows(policy, action, f"arn:aws:sagemaker:{region}:{account}:model/{model}")


def test_execution_role_reads_inputs_and_model_and_writes_only_outputs(aws_cfg):
    policy = load(EXECUTION)
    root = aws_cfg.root
    run_dir = manifest.run_dir(root, "2022-05-26_abcd1234_lstm-1")
    model = st.join(root, "models", "lstm-1", "model.tar.gz")
    shard = st.join(run_dir, "transform", "input", "part-00000.csv")
    out = st.join(run_dir, "transform", "output", "velibcast-2022-05-26-abc", "part-00000.csv.out")
    assert allows(policy, "s3:GetObject", s3_arn(model))
    assert allows(policy, "s3:GetObject", s3_arn(shard))
    assert can_list(policy, st.join(run_dir, "transform", "input") + "/")
    assert allows(policy, "s3:PutObject", s3_arn(out))
    published = [forecasts.partition_uri(root, p, date(2022, 5, 26)) for p in PRODUCTS]
    for uri in (*published, manifest.manifest_uri(root, "r"), model, shard):
        assert not allows(policy, "s3:PutObject", s3_arn(uri)), uri
    assert not any(allows(policy, "s3:GetObject", s3_arn(uri)) for uri in published)
    assert not can_list(policy, root + "/")
    assert not any(a.startswith(("s3:Delete", "iam:", "sagemaker:")) for a in actions_of(policy))
    region = aws_cfg.transform.sagemaker.region
    account = aws_cfg.transform.sagemaker.role_arn.split(":")[4]
    group = f"arn:aws:logs:{region}:{account}:log-group:/aws/sagemaker/TransformJobs"
    assert allows(policy, "logs:PutLogEvents", f"{group}:log-stream:velibcast-x/i-0")
    assert not allows(policy, "logs:PutLogEvents", f"arn:aws:logs:{region}:{account}:log-group:/other:log-stream:x")


def test_trust_policy_admits_only_sagemaker():
    trust = load(CONFIG_DIR / "iam" / "sagemaker-execution-role-trust.json")
    (s,) = trust["Statement"]
    assert s["Principal"] == {"Service": "sagemaker.amazonaws.com"} and s["Action"] == "sts:AssumeRole"
