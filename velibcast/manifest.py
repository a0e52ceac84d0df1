"""The run manifest: what a run was asked, what it did, what it cost.

`runs/<run_id>/manifest.json` is the latest attempt of a run; every attempt is also kept
as `runs/<run_id>/attempts/<started_at>.json`, so a rerun never erases the record of an
earlier one.
"""

from __future__ import annotations

import json
from datetime import datetime

from velibcast import storage as st


def run_dir(root: str, run_id: str) -> str:
    return st.join(root, "runs", run_id)


def manifest_uri(root: str, run_id: str) -> str:
    return st.join(run_dir(root, run_id), "manifest.json")


def _default(o):
    if isinstance(o, datetime):
        return o.isoformat()
    if hasattr(o, "isoformat"):
        return o.isoformat()
    if hasattr(o, "to_dict"):
        return o.to_dict()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def dumps(obj) -> str:
    return json.dumps(obj, indent=2, sort_keys=False, default=_default)


def write(storage: st.Storage, root: str, run_id: str, manifest: dict) -> str:
    body = dumps(manifest)
    attempt = manifest["started_at"].replace(":", "-") if isinstance(manifest.get("started_at"), str) \
        else manifest["started_at"].strftime("%Y-%m-%dT%H-%M-%S.%fZ")
    storage.write_text(st.join(run_dir(root, run_id), "attempts", f"{attempt}.json"), body, "application/json")
    uri = manifest_uri(root, run_id)
    storage.write_text(uri, body, "application/json")
    return uri


def read(storage: st.Storage, root: str, run_id: str) -> dict:
    return json.loads(storage.read_text(manifest_uri(root, run_id)))
