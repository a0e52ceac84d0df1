"""The ingest flow under a real Prefect server: it brings the states of the days it covers up to
the captures in the store, and a second run finds nothing to do."""

from datetime import date, datetime

import pytest
import yaml

from velibcast import storage as st
from velibcast.datasets import ingest as ing
from velibcast.errors import ConfigError
from velibcast.flows.ingest import ingest_range, ingest_states
from velibcast.timeutil import UTC


def test_the_range_is_whole_utc_days_ending_with_the_day_of_end():
    start, end = ingest_range(datetime(2022, 5, 26, 0, 30, tzinfo=UTC), 2)
    assert (start, end) == (datetime(2022, 5, 24, tzinfo=UTC), datetime(2022, 5, 27, tzinfo=UTC))
    assert ingest_range(None, 0, now=datetime(2022, 5, 26, 23, 59, tzinfo=UTC)) == (
        datetime(2022, 5, 26, tzinfo=UTC), datetime(2022, 5, 27, tzinfo=UTC))
    with pytest.raises(ConfigError, match="days_back -1"):
        ingest_range(None, -1)


def test_the_flow_ingests_the_days_before_end_and_a_rerun_writes_nothing(e2e, tmp_path):
    storage = st.Storage()
    root = str(tmp_path / "root")
    e2e.copy_snapshots(storage, root)
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump({"store": {"root": root}}))
    first = ingest_states(config=str(cfg), end=datetime(2022, 5, 26, 9, tzinfo=UTC), days_back=1)
    assert first["written"] == ["2022-05-25", "2022-05-26"] and first["captures_parsed"] > 24
    part = ing.read_partition(storage, root, date(2022, 5, 26))
    assert part is not None and part.table.num_rows > 1000 and len(part.captures) > 5
    again = ingest_states(config=str(cfg), end=datetime(2022, 5, 26, 9, tzinfo=UTC), days_back=1)
    assert again["written"] == [] and again["unchanged"] == ["2022-05-25", "2022-05-26"]
