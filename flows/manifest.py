"""The run manifest: what a run was asked, what it did, what it cost.

Every attempt's manifest is written once, before its forecasts are published, as
`runs/<run_id>/attempts/<attempt>.json`; the published Parquet carries the same manifest
in its key-value metadata and names that object. `runs/<run_id>/manifest.json` is
rewritten after the Parquet is in place: it is the latest attempt that published.
The manifest's shape is `run_records.Manifest`.
"""

from __future__ import annotations

import dataclasses
import json

from velibcast import storage as st
from velibcast.run_records import dumps
from velibcast.timeutil import key_time_us


def run_dir(root: str, run_id: str) -> str:
    return st.join(root, "runs", run_id)


def manifest_uri(root: str, run_id: str) -> str:
    return st.join(run_dir(root, run_id), "manifest.json")


def attempt_uri(root: str, run_id: str, attempt: str) -> str:
    return st.join(run_dir(root, run_id), "attempts", f"{attempt}.json")


def write_attempt(storage: st.Storage, root: str, m) -> str:
    """This attempt's manifest (a run_records.Manifest), written once before publishing."""
    uri = m.outputs.manifest_uri
    storage.write_text(uri, dumps(dataclasses.asdict(m)), "application/json")
    return uri


def write_current(storage: st.Storage, root: str, m) -> str:
    """runs/<run_id>/manifest.json: the latest attempt that published."""
    uri = manifest_uri(root, m.run_id)
    storage.write_text(uri, dumps(dataclasses.asdict(m)), "application/json")
    return uri


def write(storage: st.Storage, root: str, run_id: str, manifest: dict) -> str:
    """A manifest given as a dict (score and report tests build one by hand)."""
    body = dumps(manifest)
    started = manifest["started_at"]
    attempt = started.replace(":", "-") if isinstance(started, str) else key_time_us(started)
    storage.write_text(attempt_uri(root, run_id, attempt), body, "application/json")
    uri = manifest_uri(root, run_id)
    storage.write_text(uri, body, "application/json")
    return uri


def read(storage: st.Storage, root: str, run_id: str) -> dict:
    return json.loads(storage.read_text(manifest_uri(root, run_id)))
