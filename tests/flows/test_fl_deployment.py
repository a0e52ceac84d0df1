"""prefect.yaml declares what the deployments promise: entrypoints load from the installed package,
production and local deployments side by side, schedules paused on deploy, no machine's path stored."""

import re
from pathlib import Path

import yaml
from prefect.flows import load_flow_from_entrypoint

REPO = Path(__file__).resolve().parents[2]
DOC = yaml.safe_load((REPO / "prefect.yaml").read_text())
DEPLOYMENTS = {d["name"]: d for d in DOC["deployments"]}


def test_entrypoints_load_and_parameters_exist():
    for d in DEPLOYMENTS.values():
        flow = load_flow_from_entrypoint(d["entrypoint"], use_placeholder_flow=False)
        assert flow.name == d["entrypoint"].rsplit(".", 1)[1].replace("_", "-")  # Prefect's default name
        assert set(d["parameters"]) <= set(flow.parameters.properties)


def test_production_and_local_deployments_side_by_side():
    for name in ("day-ahead", "nowcast", "evaluation", "backfill", "ingest-states"):
        assert DEPLOYMENTS[name]["parameters"]["config"] == "configs/aws.yaml"
        assert DEPLOYMENTS[f"{name}-local"]["parameters"]["config"] == "configs/local.yaml"
        assert DEPLOYMENTS[name]["entrypoint"] == DEPLOYMENTS[f"{name}-local"]["entrypoint"]
    for name in ("day-ahead", "nowcast"):
        assert DEPLOYMENTS[name]["parameters"]["product"] == DEPLOYMENTS[f"{name}-local"]["parameters"]["product"] == name
    assert {d["work_pool"]["name"] for d in DEPLOYMENTS.values()} == {"velibcast-process"}


def test_day_ahead_runs_nightly_in_paris_and_nowcast_and_ingest_every_hour_but_paused_until_asked():
    assert DEPLOYMENTS["day-ahead"]["schedules"] == [{"cron": "30 2 * * *", "timezone": "Europe/Paris", "active": False}]
    assert DEPLOYMENTS["nowcast"]["schedules"] == [{"cron": "7 * * * *", "timezone": "UTC", "active": False}]
    # before the nowcast of the same hour (:07), so it reads the hours this ingest settled
    assert DEPLOYMENTS["ingest-states"]["schedules"] == [{"cron": "3 * * * *", "timezone": "UTC", "active": False}]
    assert DEPLOYMENTS["ingest-states"]["entrypoint"] == "velibcast.flows.ingest.ingest_states"
    for d in DEPLOYMENTS.values():
        assert all(s.get("active") is False for s in d.get("schedules", [])), d["name"]


def test_one_ingest_of_the_states_runs_at_a_time():
    for name in ("ingest-states", "ingest-states-local"):
        assert DEPLOYMENTS[name]["concurrency_limit"] == 1, name


def test_nothing_of_the_deployers_machine_is_stored():
    # An explicit empty pull list: `prefect deploy` would otherwise add set_working_directory(<cwd>).
    assert DOC["pull"] == []
    text = (REPO / "prefect.yaml").read_text()
    assert "$PWD" not in text and not re.search(r"^\s*[^#]*:\s*['\"]?/", text, flags=re.M)  # no absolute path
    assert all(not d["entrypoint"].split(".")[0].endswith("py") and ":" not in d["entrypoint"]
               for d in DEPLOYMENTS.values())


def test_local_deployments_run_in_the_workers_folder_and_production_ones_in_a_temporary_one():
    # "." is resolved by the process worker against its own folder, so configs/local.yaml's ./data is
    # the data of the folder the worker was started from; no deployer's path is stored.
    for name, d in DEPLOYMENTS.items():
        expected = {"working_dir": "."} if name.endswith("-local") else {}
        assert d["work_pool"].get("job_variables", {}) == expected, name


def test_the_configs_the_deployments_name_ship_with_the_package(tmp_path, monkeypatch):
    from velibcast.config import CONFIG_DIR, load_config

    monkeypatch.chdir(tmp_path)  # a worker's folder, not a checkout
    for d in DEPLOYMENTS.values():
        assert load_config(d["parameters"]["config"]).source == str(CONFIG_DIR / Path(d["parameters"]["config"]).name)
