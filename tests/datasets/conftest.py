import shutil

import pytest

from tests.datasets.ds_helpers import SAMPLE_SNAPSHOTS


@pytest.fixture(scope="session")
def real_store(tmp_path_factory):
    """The 85 real snapshots of 2022-05-22T23:37Z..05-26 in a local store: the first bundled sample of
    sample_data/velib, which `velibcast snapshots import` made from the real CSV series
    (sample_data/README.md). The days before are left out, so the figures these tests check do not
    move when the sample grows."""
    root = tmp_path_factory.mktemp("real") / "store"
    snapshots = root / "velib" / "snapshots"
    snapshots.mkdir(parents=True)
    for src in (SAMPLE_SNAPSHOTS / "snapshots").glob("*.jsonl.gz"):
        if src.name >= "2022-05-22T23-37-40Z":
            shutil.copy(src, snapshots / src.name)
    assert len(list(snapshots.glob("*.jsonl.gz"))) == 85
    return str(root)
