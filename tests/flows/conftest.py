"""Flows run under Prefect for real: one temporary Prefect API server for the session."""

import os

import pytest


@pytest.fixture(scope="session", autouse=True)
def prefect_api(tmp_path_factory):
    os.environ.setdefault("PREFECT_HOME", str(tmp_path_factory.mktemp("prefect-home")))
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    from prefect.testing.utilities import prefect_test_harness

    # 2-core CI: the harness's default start-up timeout is too short (PrefectHQ/prefect#15075).
    with prefect_test_harness(server_startup_timeout=90):
        yield
