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
