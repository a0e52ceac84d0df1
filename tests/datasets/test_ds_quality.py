"""Data-quality summary: appearing/disappearing stations, capacity changes, stale duedate."""

from datetime import timedelta

from tests.datasets.ds_helpers import rec, utc
from velibcast.datasets.report import SkipReport
from velibcast.datasets.snapshots import write_snapshot
from velibcast.datasets.windows import build_state_grid

T0 = utc("2022-05-23T00:00Z")
H = timedelta(hours=1)


def test_quality_summary_on_the_grid(tmp_path, storage):
    root = str(tmp_path)
    for i in range(6):
        cap = T0 + i * H
        recs = [rec("A", capacity=20 if i < 3 else 22, due=cap.isoformat()),
                rec("OLD", due="2021-02-21T10:00:00+01:00")]
        if i >= 2:
            recs.append(rec("NEW", due=cap.isoformat()))
        if i < 4:
            recs.append(rec("GONE", due=cap.isoformat()))
        write_snapshot(storage, root, cap, recs)
    grid = build_state_grid(storage, root, [T0 + i * H for i in range(6)], report=SkipReport())
    q = grid.quality
    assert q["snapshots"] == 6 and q["stations"] == 4
    assert q["stations_appeared"] == {"count": 1, "examples": ["NEW"]}
    assert q["stations_disappeared"] == {"count": 1, "examples": ["GONE"]}
    assert q["capacity_changes"] == {"stations": 1, "examples": {"A": [["2022-05-23T03:00:00Z", 20, 22]]}}
    assert q["stale_duedate"]["stations"] == 1 and q["stale_duedate"]["examples"] == {"OLD": "2021-02-21T09:00:00Z"}


def test_quality_on_real_data(real_store, storage):
    from velibcast.datasets.quality import QualityTracker
    from velibcast.datasets.report import ValidationPolicy
    from velibcast.datasets.windows import SnapshotSource

    tracker = QualityTracker()
    src = SnapshotSource(storage, real_store, utc("2022-05-23T00:00Z"), utc("2022-05-27T00:00Z"),
                         ValidationPolicy(), SkipReport(), [tracker])
    src.between(utc("2022-05-23T00:00Z"), utc("2022-05-27T00:00Z"))
    q = tracker.to_dict()
    assert q["snapshots"] == 84 and q["stations"] == 1415
    assert q["stations_per_snapshot"]["min"] == 309
    rows = tracker.table_rows()
    assert rows[1] == {"check": "stations seen", "value": 1415, "examples": ""}
