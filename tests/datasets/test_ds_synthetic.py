"""The synthetic generator writes a store the pipeline reads without rejections."""

from datetime import datetime, timedelta

from velibcast.datasets.report import SkipReport
from velibcast.datasets.synthetic import generate_store
from velibcast.datasets.windows import WindowSummary, iter_window_batches, origins_for_range
from velibcast.timeutil import UTC


def test_synthetic_store_makes_windows(tmp_path, storage):
    start = datetime(2024, 1, 1, tzinfo=UTC)
    c = generate_store(storage, str(tmp_path), n_stations=50, days=2, start=start, seed=1)
    assert c["snapshots"] >= 44 and c["records"] > 44 * 45
    assert generate_store(storage, str(tmp_path / "b"), 50, 2, start, seed=1) == c  # deterministic
    report, summary = SkipReport(), WindowSummary()
    origins = origins_for_range(start + timedelta(days=1), start + timedelta(days=2))
    batches = list(iter_window_batches(storage, str(tmp_path), origins, {}, report, summary=summary))
    assert summary.windows_emitted == sum(map(len, batches)) > 0.8 * 50 * 24
    assert report.total("records_rejected") == 0 and report.total("objects_rejected") == 0
    assert all(((0 <= b.history) & (b.history <= b.capacity[:, None])).all() for b in batches)
