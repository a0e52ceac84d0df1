import pytest

from velibcast.config import load_config
from velibcast.errors import ConfigError


def test_embedded_default_loads_and_hash_ignores_store_location():
    a = load_config("configs/local.yaml")
    b = load_config("configs/local.yaml", overrides={"store": {"root": "s3://elsewhere/x"}})
    assert a["transform"]["backend"] == "local"
    assert a.hash() == b.hash()
    c = load_config("configs/local.yaml", overrides={"windows": {"max_staleness_hours": 2}})
    assert c.hash() != a.hash()


def test_unknown_key_is_an_error_naming_it(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("transform:\n  backnd: local\n")
    with pytest.raises(ConfigError, match="transform.backnd"):
        load_config(p)


def test_enum_values_are_checked(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("snapshots:\n  on_bad_record: ignore\n")
    with pytest.raises(ConfigError, match="on_bad_record"):
        load_config(p)


def test_credentials_in_the_config_are_refused_without_echoing_them(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("store:\n  s3:\n    aws_secret_access_key: SECRETdoNotLeak\n")
    with pytest.raises(ConfigError, match="standard AWS chain") as exc:
        load_config(p)
    assert "SECRETdoNotLeak" not in str(exc.value)


@pytest.mark.parametrize("yaml_text, key, expected", [
    ("store:\n  root: [1, 2]\n", "store.root", "text"),
    ("run:\n  min_station_coverage: abc\n", "run.min_station_coverage", "a number"),
    ("transform:\n  instance_count: two\n", "transform.instance_count", "a number"),
    ("transform:\n  max_concurrent_transforms: true\n", "transform.max_concurrent_transforms", "a number"),
    ("run:\n  timeouts_s:\n    windows: [1]\n", "run.timeouts_s.windows", "a number"),
    ("model:\n  uri: 5\n", "model.uri", "text"),
    ("store:\n  s3: [endpoint_url]\n", "store.s3", "a mapping"),
])
def test_a_value_of_the_wrong_type_is_an_error_naming_the_key_and_the_type(tmp_path, yaml_text, key, expected):
    p = tmp_path / "c.yaml"
    p.write_text(yaml_text)
    with pytest.raises(ConfigError, match=rf"{p}: {key}\b.* must be {expected}"):
        load_config(p)


def test_numbers_may_be_written_as_integers_or_decimals_and_dates_as_yaml_dates(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("windows:\n  max_staleness_hours: 2\ntransform:\n  invocations_timeout_s: 1.5\n"
                 "run:\n  default_run_date: 2022-05-25\n")
    cfg = load_config(p)
    assert cfg["windows"]["max_staleness_hours"] == 2 and cfg["transform"]["invocations_timeout_s"] == 1.5
