import shutil

import pytest

from tests.datasets.ds_helpers import SAMPLE_SNAPSHOTS


@pytest.fixture(scope="session")
def real_store(tmp_path_factory):
    """The 85 real snapshots of 2022-05-23..26 in a local store: sample_data/velib, which
    `velibcast snapshots import` made from the real CSV series (sample_data/README.md)."""
    root = tmp_path_factory.mktemp("real") / "store"
    shutil.copytree(SAMPLE_SNAPSHOTS, root / "velib")
    assert len(list((root / "velib" / "snapshots").glob("*.jsonl.gz"))) == 85
    return str(root)
