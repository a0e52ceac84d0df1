"""Flows run under Prefect for real: one temporary Prefect API server for the session."""

import os
from datetime import datetime
from pathlib import Path

import pytest
import yaml

from velibcast import storage as st
from velibcast.timeutil import UTC

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session", autouse=True)
def prefect_api(tmp_path_factory):
    os.environ.setdefault("PREFECT_HOME", str(tmp_path_factory.mktemp("prefect-home")))
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    from prefect.testing.utilities import prefect_test_harness

    # 2-core CI: the harness's default start-up timeout is too short (PrefectHQ/prefect#15075).
    with prefect_test_harness(server_startup_timeout=90):
        yield


# ---------------------------------------------------------------- a short real run
SAMPLE = REPO_ROOT / "sample_data" / "velib" / "snapshots"
# A short range keeps the suite fast; the demo runs a whole day.
START, END = "2022-05-26T05:00Z", "2022-05-26T08:00Z"
FIRST_CAPTURE, LAST_CAPTURE = "2022-05-25T03", "2022-05-26T09"


def _copy_snapshots(storage, root, transform=None, first=FIRST_CAPTURE, last=LAST_CAPTURE):
    n = 0
    for p in sorted(SAMPLE.rglob("*.jsonl.gz")):
        if not (first <= p.name[:13] <= last):
            continue
        data = p.read_bytes()
        if transform:
            data = transform(p.name, data)
        storage.write_bytes(st.join(root, "velib", "snapshots", p.name), data)
        n += 1
    assert n > 24, "the bundled sample must cover the test range"


@pytest.fixture(scope="session")
def trained_model(tmp_path_factory):
    from velibcast.storage import Storage
    from velibcast.training.train import train_model

    root = tmp_path_factory.mktemp("model-root")
    info = train_model(Storage(), str(SAMPLE.parents[1]),
                       datetime(2022, 5, 23, tzinfo=UTC), datetime(2022, 5, 25, 12, tzinfo=UTC),
                       str(root), seed=1, backtest=False, progress=lambda line: None)
    return info


def _config(tmp_path, root, model_uri, name="cfg", **extra):
    cfg = {"store": {"root": root}, "model": {"uri": model_uri},
           "transform": {"backend": "local", "max_concurrent_transforms": 2}}
    for k, v in extra.items():
        cfg.setdefault(k, {}).update(v)
    p = tmp_path / f"{name}-{abs(hash(root))}.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return str(p)


def _utc(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _run(cfg_path, start=START, end=END, **kwargs):
    from velibcast.flows.nightly import nightly

    return nightly(config=cfg_path, start=_utc(start), end=_utc(end), **kwargs)


def _published(storage, root, product="evaluation") -> dict:
    """Every published date's object of a product (the nightly flow's by default), checked as a
    reader relies on it; {date: (table, manifests)}.

    - each row sits in the partition of its origin's Europe/Paris date;
    - (station_code, origin_ts, horizon_h) is unique across the product's dataset;
    - every run with rows in an object has its manifest inside it, equal to its attempt
      record `runs/<run_id>/attempts/<attempt>.json`;
    - a run alone in an object has exactly the rows its manifest says it published there.
    """
    import json
    from datetime import date

    from velibcast.flows import forecasts

    out: dict = {}
    keys: set = set()
    for o in storage.list(st.join(root, "forecasts", f"product={product}") + "/"):
        if not o.uri.endswith("/" + forecasts.PART_NAME):
            continue
        d = date.fromisoformat(o.uri.split("run_date=")[1][:10])
        table, manifests = forecasts.read_partition_manifests(storage, root, product, d)
        rows = table.to_pylist()
        assert {forecasts.paris_date(r["origin_ts"]) for r in rows} <= {d}, o.uri
        these = {(r["station_code"], r["origin_ts"], r["horizon_h"]) for r in rows}
        assert len(these) == len(rows) and not these & keys, f"{o.uri}: duplicate keys"
        keys |= these
        runs = {r["run_id"] for r in rows}
        assert runs <= set(manifests), f"{o.uri}: rows of {runs - set(manifests)} without their manifest"
        for run_id in runs:
            m = manifests[run_id]
            assert json.loads(storage.read_text(m["outputs"]["manifest_uri"])) == m
            mine = [p for p in m["outputs"]["partitions"] if p["run_date"] == d.isoformat()]
            assert len(mine) == 1
            if runs == {run_id}:
                assert mine[0]["rows_after"] == table.num_rows
            assert sum(1 for r in rows if r["run_id"] == run_id) <= mine[0]["rows_of_this_run"]
        out[d] = (table, manifests)
    return out


@pytest.fixture
def e2e():
    """Helpers for a short real run: copy snapshots, write a config, run the nightly flow."""
    from types import SimpleNamespace

    return SimpleNamespace(copy_snapshots=_copy_snapshots, config=_config, run=_run, published=_published,
                           utc=_utc, START=START, END=END)
