import json
from datetime import UTC, date, datetime

import pytest

from velibcast import constants as C
from velibcast.config import Config, StageTimeouts, load_config
from velibcast.errors import ConfigError


def test_embedded_default_loads_and_hash_ignores_store_location():
    a = load_config("configs/local.yaml")
    b = load_config("configs/local.yaml", overrides={"store": {"root": "s3://elsewhere/x"}})
    assert a.transform.backend == "local"
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
    ("transform:\n  instance_count: two\n", "transform.instance_count", "a whole number"),
    ("transform:\n  max_concurrent_transforms: true\n", "transform.max_concurrent_transforms", "a whole number"),
    ("run:\n  timeouts_s:\n    windows: [1]\n", "run.timeouts_s.windows", "a number"),
    ("model:\n  uri: 5\n", "model.uri", "text"),
    ("store:\n  s3: [endpoint_url]\n", "store.s3", "a mapping"),
])
def test_a_value_of_the_wrong_type_is_an_error_naming_the_key_and_the_type(tmp_path, yaml_text, key, expected):
    p = tmp_path / "c.yaml"
    p.write_text(yaml_text)
    with pytest.raises(ConfigError, match=rf"{p}: {key}\b.* must be {expected}"):
        load_config(p)


def test_a_number_may_be_written_as_an_integer_or_a_decimal_and_a_date_as_a_yaml_date(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("windows:\n  max_staleness_hours: 2\ntransform:\n  wait_deadline_s: 1.5\n"
                 "run:\n  default_run_date: 2022-05-25\n")
    cfg = load_config(p)
    assert cfg.windows.max_staleness_hours == 2 and cfg.transform.wait_deadline_s == 1.5
    assert cfg.run.default_run_date == date(2022, 5, 25)


def test_sections_are_typed_records_read_by_attribute_without_conversion_at_use(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("windows:\n  max_staleness_hours: 2\ntransform:\n  instance_count: 3\n"
                 "model:\n  train_start: 2022-05-12T10:00Z\nrun:\n  default_run_date: 2022-05-25\n"
                 "  default_as_of: '2022-05-25T02:30+02:00'\n")
    cfg = load_config(p)
    assert type(cfg.windows.max_staleness_hours) is float and cfg.windows.max_staleness_hours == 2.0
    assert type(cfg.transform.instance_count) is int and cfg.transform.instance_count == 3
    assert cfg.model.train_start == datetime(2022, 5, 12, 10, tzinfo=UTC)
    assert cfg.run.default_run_date == date(2022, 5, 25)
    assert cfg.run.default_as_of == datetime(2022, 5, 25, 0, 30, tzinfo=UTC)
    assert cfg.run.timeouts_s.seconds("transform") > 0
    assert cfg.transform.sagemaker.region is None


@pytest.mark.parametrize("yaml_text, key, expected", [
    ("transform:\n  instance_count: 2.5\n", "transform.instance_count", "a whole number"),
    ("transform:\n  max_shard_bytes: 0\n", "transform.max_shard_bytes", "a whole number >= 1"),
    ("transform:\n  wait_deadline_s: -1\n", "transform.wait_deadline_s", "a number > 0"),
    ("windows:\n  max_staleness_hours: 0\n", "windows.max_staleness_hours", "a number > 0"),
    ("run:\n  min_station_coverage: 1.5\n", "run.min_station_coverage", "a number >= 0 and <= 1"),
    ("run:\n  timeouts_s:\n    publish: 0\n", "run.timeouts_s.publish", "a number > 0"),
    ("run:\n  default_run_date: 2022-13-01\n", "run.default_run_date", "a date"),
    ("run:\n  default_as_of: '2022-05-25T02:30'\n", "run.default_as_of", "a time with a zone"),
    ("model:\n  train_end: yesterday\n", "model.train_end", "a time with a zone"),
])
def test_a_value_out_of_range_or_unreadable_is_refused_at_load_naming_file_key_and_rule(tmp_path, yaml_text, key,
                                                                                         expected):
    p = tmp_path / "c.yaml"
    p.write_text(yaml_text)
    with pytest.raises(ConfigError, match=rf"^{p}: {key}=.* must be {expected}") as e:
        load_config(p)
    assert "datetime.datetime" not in str(e.value)  # the value as written, not as half-read


def test_unknown_stage_timeout_is_an_error_with_the_likely_key(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("run:\n  timeouts_s:\n    transfrom: 60\n")
    with pytest.raises(ConfigError, match=r"unknown key 'run.timeouts_s.transfrom'; did you mean 'run.timeouts_s.transform'"):
        load_config(p)


def test_a_section_left_empty_takes_its_defaults(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("transform:\n# every key commented out\nstore:\n  root: ./d\n")
    assert load_config(p).transform == load_config(None).transform


def test_a_config_stored_in_a_manifest_reads_back_to_the_same_typed_config_and_hash():
    cfg = load_config("configs/aws.yaml")
    back = Config(json.loads(json.dumps(cfg.data)), "manifest")
    assert back.transform == cfg.transform and back.hash() == cfg.hash()
    with pytest.raises(ConfigError, match="manifest: transform.instance_count="):
        Config({**cfg.data, "transform": {**cfg.data["transform"], "instance_count": "1"}}, "manifest")


def test_the_hash_reads_values_not_spellings(tmp_path):
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text("windows:\n  max_staleness_hours: 2\n")
    b.write_text("windows:\n  max_staleness_hours: 2.0\n")
    assert load_config(a).hash() == load_config(b).hash()


def test_every_stage_with_a_default_timeout_has_a_timeout_setting():
    assert set(StageTimeouts.__struct_fields__) == set(C.STAGE_TIMEOUTS_S)
    assert all(load_config(None).run.timeouts_s.seconds(s) == t for s, t in C.STAGE_TIMEOUTS_S.items())
