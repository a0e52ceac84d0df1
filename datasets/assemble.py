"""Snapshots of a range -> transform input shards + skip report, in one streaming pass."""

from __future__ import annotations

from datetime import datetime, timedelta

from velibcast import constants as C
from velibcast import storage as st
from velibcast.datasets.jsonio import dumps_bytes, loads
from velibcast.datasets.records import layout_for, write_transform_inputs
from velibcast.datasets.report import SkipReport, ValidationPolicy
from velibcast.datasets.windows import WindowSummary, iter_windows
from velibcast.errors import DataError


def load_station_index(storage: st.Storage, uri: str | None) -> dict[str, int]:
    """The model's station_mappings.json ({"station_index": {code: i}}) or a flat {code: i}."""
    if not uri:
        return {}
    doc = loads(storage.read_bytes(uri))
    index = doc.get("station_index", doc) if isinstance(doc, dict) else None
    if not isinstance(index, dict) or not all(isinstance(v, int) for v in index.values()):
        raise DataError(uri, "not a station mapping", 'expected {"station_index": {"16107": 1, ...}}')
    return {str(k): int(v) for k, v in index.items()}


def report_uri_for(out_prefix: str) -> str:
    """Beside the shards, never under their prefix (Batch Transform would send it as input)."""
    parent, _, name = out_prefix.rstrip("/").rpartition("/")
    return st.join(parent, f"windows-report-{name}.json") if parent else f"windows-report-{name}.json"


def assemble_transform_inputs(
    storage: st.Storage,
    snapshots_root: str,
    origins: list[datetime],
    out_prefix: str,
    fmt: str = "csv",
    station_index: dict[str, int] | None = None,
    max_staleness: timedelta = timedelta(hours=C.MAX_STALENESS_HOURS),
    policy: ValidationPolicy | None = None,
    max_shard_bytes: int = C.TRANSFORM_SHARD_MAX_BYTES,
    shard_count: int = C.TRANSFORM_SHARD_COUNT,
    manifest_uri: str | None = None,
    report_uri: str | None = None,
    observers=(),
) -> dict:
    report = SkipReport()
    summary = WindowSummary()
    windows = iter_windows(storage, snapshots_root, origins, station_index or {}, report,
                           max_staleness, policy, summary, observers)
    shards = write_transform_inputs(storage, windows, out_prefix, fmt, max_shard_bytes, shard_count, manifest_uri)
    result = {
        "snapshots_root": snapshots_root,
        "first_origin": f"{min(origins):%Y-%m-%dT%H:%MZ}" if origins else None,
        "last_origin": f"{max(origins):%Y-%m-%dT%H:%MZ}" if origins else None,
        "max_staleness_hours": max_staleness.total_seconds() / 3600,
        "summary": summary.to_dict(),
        "report": report.to_dict(),
        "layout": layout_for(fmt).to_dict(),
        "shards": shards,
        "manifest_file": manifest_uri,
    }
    for obs in observers:
        if hasattr(obs, "to_dict"):
            result.setdefault("data_quality", obs.to_dict())
    report_uri = report_uri or report_uri_for(out_prefix)
    storage.write_bytes(report_uri, dumps_bytes(result), content_type="application/json")
    result["report_uri"] = report_uri
    return result
