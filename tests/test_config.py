from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from myelin.config import (
    Config,
    ConfigError,
    load_config,
    new_config,
    parse_config,
    render_config,
)


def test_empty_file_gives_all_defaults(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("")
    config = load_config(path)
    assert dataclasses.replace(config, config_dir=".") == Config()
    assert config.base_url == "http://127.0.0.1:8008/"


def test_rendered_config_round_trips() -> None:
    config = new_config(server_name="example.org", listen="[::1]:8448", enable_registration=True)
    again = parse_config(yaml.safe_load(render_config(config)), config.config_dir)
    assert again == config
    assert again.listen.host == "::1"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"nope": 1}, "nope: unknown key"),
        ({"listen": {"nope": 1}}, "listen.nope: unknown key"),
        ({"listen": {"port": "8008"}}, "listen.port: expected an integer, got '8008'"),
        ({"listen": {"port": True}}, "listen.port: expected an integer"),
        ({"listen": {"x_forwarded": "yes"}}, "listen.x_forwarded: expected true or false"),
        ({"server_name": 5}, "server_name: expected a string"),
        ({"server_name": "has space"}, "server_name: expected a server name"),
        ({"public_baseurl": "ftp://x"}, "public_baseurl: expected an http(s):// URL"),
        ({"passwords": {"bcrypt_rounds": 2}}, "bcrypt_rounds: expected an integer between"),
        ({"rate_limits": {"login": {"per_second": 0}}}, "rate_limits.login.per_second: expected a "
                                                         "number greater than 0"),
        ({"metrics": "on"}, "metrics: expected a mapping"),
        ({"database": {"postgres_dsn": "mysql://x"}}, "database.postgres_dsn: expected a "
                                                      "postgresql:// URL"),
        ({"federation": {"old_signing_keys": ["ed25519:old notbase64 5"]}},
         "federation.old_signing_keys: expected a list of 'ed25519:KEYID"),
        ([1, 2], "expected a mapping"),
    ],
)
def test_bad_values_name_the_key(raw: object, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(raw)
    assert message in str(info.value)


def test_floats_accept_integers() -> None:
    config = parse_config({"rate_limits": {"login": {"per_second": 2}}})
    assert config.rate_limits.login.per_second == 2.0


def test_paths_resolve_against_config_folder(tmp_path: Path) -> None:
    path = tmp_path / "etc" / "hs.yaml"
    path.parent.mkdir()
    path.write_text("data_dir: ../var\n")
    config = load_config(path)
    assert config.resolve(config.signing_key_path) == (tmp_path / "var" / "signing.key").resolve()
