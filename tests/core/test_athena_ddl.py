"""configs/athena/forecasts.sql describes the Parquet the code writes, where it writes it."""

import re

import pyarrow as pa
import pytest

from velibcast import storage as st
from velibcast.config import CONFIG_DIR, load_config
from velibcast.flows import forecasts, score

DDL = (CONFIG_DIR / "athena" / "forecasts.sql").read_text()
HIVE_TYPE = {pa.string(): "string", pa.int8(): "tinyint", pa.int32(): "int", pa.int64(): "bigint",
             pa.float64(): "double", pa.bool_(): "boolean", pa.timestamp("us", tz="UTC"): "timestamp"}


def table_ddl(name: str) -> tuple[str, str]:
    m = re.search(rf"CREATE EXTERNAL TABLE IF NOT EXISTS velibcast\.{name} \((.*?)\n\)\n(.*?)\n\);", DDL, re.S)
    assert m, f"no CREATE EXTERNAL TABLE velibcast.{name}"
    return m.group(1), m.group(2)


@pytest.mark.parametrize("name,schema,prefix", [("forecasts", forecasts.SCHEMA, "forecasts"),
                                                ("accuracy", score.ACCURACY_SCHEMA, "accuracy")])
def test_columns_types_and_location_match_the_code(name, schema, prefix):
    columns, props = table_ddl(name)
    declared = [tuple(w.rstrip(",") for w in line.split()[:2]) for line in columns.strip().splitlines()]
    assert declared == [(f.name, HIVE_TYPE[f.type]) for f in schema]
    root = load_config(CONFIG_DIR / "aws.yaml").root
    assert f"LOCATION '{st.join(root, prefix)}/'" in props
    template = st.join(root, prefix, "run_date=${run_date}") + "/"
    assert f"'storage.location.template'      = '{template}'" in props
    assert "PARTITIONED BY (run_date string" in props and "'projection.run_date.type'       = 'date'" in props
    # the partition template is the one forecasts.partition_uri builds
    from datetime import date

    uri = forecasts.partition_uri(root, date(2022, 5, 26)) if name == "forecasts" else score.accuracy_uri(root, date(2022, 5, 26))
    assert uri == template.replace("${run_date}", "2022-05-26") + forecasts.PART_NAME
