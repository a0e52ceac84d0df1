"""configs/athena/forecasts.sql describes the Parquet the code writes, where it writes it."""

import re
from datetime import date

import pyarrow as pa
import pytest

from velibcast import storage as st
from velibcast.config import CONFIG_DIR, load_config
from velibcast.datasets import ingest, states
from velibcast.flows import forecasts, score
from velibcast.flows.products import PRODUCTS

DDL = (CONFIG_DIR / "athena" / "forecasts.sql").read_text()
HIVE_TYPE = {pa.string(): "string", pa.int8(): "tinyint", pa.int32(): "int", pa.int64(): "bigint",
             pa.float32(): "float", pa.float64(): "double", pa.bool_(): "boolean",
             pa.timestamp("us", tz="UTC"): "timestamp"}
# Hive partition keys, in folder order: Athena reads them from the path, and a table cannot declare
# a partition key as a column too.
PARTITION_KEYS = ("product", "run_date")


def table_ddl(name: str) -> tuple[str, str]:
    m = re.search(rf"CREATE EXTERNAL TABLE IF NOT EXISTS velibcast\.{name} \((.*?)\n\)\n(.*?)\n\);", DDL, re.S)
    assert m, f"no CREATE EXTERNAL TABLE velibcast.{name}"
    return m.group(1), m.group(2)


def declared(block: str) -> list[tuple[str, str]]:
    """(name, type) of each line of a column or partition list."""
    pairs = [line.split()[:2] for line in block.strip().splitlines()]
    return [(name, kind.rstrip(",")) for name, kind in pairs]


@pytest.mark.parametrize("name,schema,uri_of", [("forecasts", forecasts.SCHEMA, forecasts.partition_uri),
                                                ("accuracy", score.ACCURACY_SCHEMA, score.accuracy_uri)])
def test_columns_types_partitions_and_location_match_the_code(name, schema, uri_of):
    columns, props = table_ddl(name)
    assert declared(columns) == [(f.name, HIVE_TYPE[f.type]) for f in schema if f.name not in PARTITION_KEYS]
    partitioned = re.search(r"PARTITIONED BY \((.*?)\n\)", props, re.S)
    assert partitioned and declared(partitioned.group(1)) == [(k, "string") for k in PARTITION_KEYS]
    root = load_config(CONFIG_DIR / "aws.yaml").root
    assert f"LOCATION '{st.join(root, name)}/'" in props
    template = st.join(root, name, "product=${product}", "run_date=${run_date}") + "/"
    assert f"'storage.location.template'      = '{template}'" in props
    # every product is projected, and its partition is the folder the code writes
    values = re.search(r"'projection\.product\.values'\s*=\s*'([^']*)'", props)
    assert "'projection.product.type'        = 'enum'" in props and values
    assert sorted(values.group(1).split(",")) == sorted(PRODUCTS)
    assert "'projection.run_date.type'       = 'date'" in props
    for product in PRODUCTS:
        assert uri_of(root, product, date(2022, 5, 26)) == template.replace("${product}", product).replace(
            "${run_date}", "2022-05-26") + forecasts.PART_NAME


STATES_DDL = (CONFIG_DIR / "athena" / "states.sql").read_text()


def test_the_states_table_matches_the_parquet_ingest_writes_where_it_writes_it():
    m = re.search(r"CREATE EXTERNAL TABLE IF NOT EXISTS velibcast\.states \((.*?)\n\)\n(.*?)\n\);", STATES_DDL, re.S)
    assert m, "no CREATE EXTERNAL TABLE velibcast.states"
    columns, props = m.group(1), m.group(2)
    hive = {**HIVE_TYPE, pa.int16(): "smallint"}
    assert declared(columns) == [(f.name, hive[f.type]) for f in states.SCHEMA]
    partitioned = re.search(r"PARTITIONED BY \((.*?)\n\)", props, re.S)
    assert partitioned and declared(partitioned.group(1)) == [("date", "string")]
    root = load_config(CONFIG_DIR / "aws.yaml").root
    assert f"LOCATION '{st.join(root, 'states')}/'" in props
    template = st.join(root, "states", "date=${date}") + "/"
    assert f"'storage.location.template'      = '{template}'" in props
    folder = template.replace("${date}", "2022-05-26")
    assert [ingest.hour_uri(root, date(2022, 5, 26), k) for k in range(24)] == [
        f"{folder}part-{k:02d}.parquet" for k in range(24)]
    # the date's ledger sits beside its hours under a name Athena skips (a leading "_")
    assert ingest.partition_uri(root, date(2022, 5, 26)) == folder + ingest.LEDGER_NAME
    assert ingest.LEDGER_NAME.startswith("_") and not ingest.LEDGER_NAME.endswith(".parquet")
