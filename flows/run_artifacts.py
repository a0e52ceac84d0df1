"""Prefect artifacts that take a user from a run to its outputs: links to the manifest and the
report PNG, and the data-quality summary of the snapshots the run read (markdown).

The run summary table stays in stages.report_artifacts; these sit beside it under keys of the
same run label, so the Prefect UI lists a night's artifacts together. No-op outside a Prefect run.
"""

from __future__ import annotations


def artifact_key(kind: str, label: str) -> str:
    """Prefect keys allow lowercase letters, digits and dashes."""
    return (kind + "-" + "".join(ch if ch.isalnum() else "-" for ch in label.lower()))[:100]


def quality_markdown(run_id: str, q: dict | None) -> str:
    if not q:
        return f"# Data quality, run `{run_id}`\n\nNo data-quality summary was recorded for this run."
    per = q.get("stations_per_snapshot") or {}
    rows = [
        ("snapshots read", q["snapshots"], f"{q['first_capture']} .. {q['last_capture']}"),
        ("stations seen", q["stations"], f"per snapshot min {per.get('min')}, median {per.get('median')}, "
                                          f"max {per.get('max')}"),
        ("stations appearing after the first snapshot", q["stations_appeared"]["count"],
         ", ".join(q["stations_appeared"]["examples"][:5])),
        ("stations disappearing before the last snapshot", q["stations_disappeared"]["count"],
         ", ".join(q["stations_disappeared"]["examples"][:5])),
        ("stations whose capacity changed", q["capacity_changes"]["stations"],
         ", ".join(list(q["capacity_changes"]["examples"])[:5])),
        (f"stations with a duedate over {q['stale_duedate']['hours']:g} h old", q["stale_duedate"]["stations"],
         ", ".join(list(q["stale_duedate"]["examples"])[:5])),
    ]
    lines = [f"# Data quality, run `{run_id}`", "", "| check | value | examples |", "| --- | --- | --- |"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return "\n".join(lines)


def publish_run_artifacts(label: str, m: dict, manifest_uri: str, png_uri: str | None) -> list[str]:
    """The keys created; [] outside a Prefect run."""
    # lazy: Prefect in library code: a no-op outside a Prefect run
    from prefect.artifacts import create_link_artifact, create_markdown_artifact
    from prefect.context import get_run_context  # lazy: Prefect in library code: a no-op outside a Prefect run

    try:
        get_run_context()
    except Exception:
        return []
    keys = [artifact_key("run-manifest", label)]
    create_link_artifact(manifest_uri, link_text="manifest.json", key=keys[-1],
                         description=f"manifest of run {m['run_id']}: counts, skips, cost, timings")
    if png_uri:
        keys.append(artifact_key("run-report-png", label))
        create_link_artifact(png_uri, link_text="report PNG", key=keys[-1],
                             description=f"report of run {m['run_id']}: map, network curve, accuracy")
    keys.append(artifact_key("run-data-quality", label))
    create_markdown_artifact(quality_markdown(m["run_id"], m.get("data_quality")), key=keys[-1],
                             description=f"data quality of the snapshots run {m['run_id']} read")
    return keys
