import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="session")
def real_store(tmp_path_factory):
    """All 85 real CSV files imported once into a local store (partitioned layout)."""
    from ds_helpers import INFO_2022, SERIES

    from velibcast.datasets.importers import import_csv_series
    from velibcast.storage import Storage

    root = str(tmp_path_factory.mktemp("real") / "store")
    counts = import_csv_series(Storage(), SERIES, INFO_2022, root)
    assert counts["snapshots_written"] == 85
    return root
