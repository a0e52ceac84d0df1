"""prefect.yaml declares what the nightly deployment promises: its entrypoint loads, cron and time zone."""

from pathlib import Path

import yaml
from prefect.flows import load_flow_from_entrypoint

REPO = Path(__file__).resolve().parents[2]


def test_prefect_yaml_entrypoints_load_and_nightly_is_scheduled_in_paris():
    doc = yaml.safe_load((REPO / "prefect.yaml").read_text())
    deployments = {d["name"]: d for d in doc["deployments"]}
    nightly = deployments["nightly"]
    assert nightly["schedules"] == [{"cron": "30 2 * * *", "timezone": "Europe/Paris", "active": True}]
    assert nightly["work_pool"]["name"] == "velibcast-process"
    for d in deployments.values():
        path, name = d["entrypoint"].split(":")
        flow = load_flow_from_entrypoint(str(REPO / path) + ":" + name)
        assert flow.name == d["entrypoint"].split(":")[1]
        assert set(d["parameters"]) <= set(flow.parameters.properties)
