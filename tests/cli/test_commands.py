"""generate-config, register-user, migrate and config errors, through the real command."""

from __future__ import annotations

from pathlib import Path

from myelin.config import load_config
from myelin.storage.migrations import available_migrations

from cli_harness import ServerProcess, free_port, generate_config, http_get, http_post, run_cli

ALL_MIGRATIONS = "Applied migrations " + ", ".join(str(n) for n, _ in available_migrations())


def test_generate_config_options(tmp_path: Path) -> None:
    out = tmp_path / "conf" / "homeserver.yaml"
    result = run_cli("generate-config", "--server-name", "example.org", "--data-dir", "data",
                     "--listen", "0.0.0.0:9000", "--database", "postgresql://u:p@db:5432/m",
                     "--enable-registration", "--output", str(out), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    config = load_config(out)
    assert config.server_name == "example.org"
    assert config.data_path == (tmp_path / "conf" / "data").resolve()
    assert (config.listen.host, config.listen.port) == ("0.0.0.0", 9000)
    assert config.database.engine == "postgresql"
    assert config.database.postgres_dsn == "postgresql://u:p@db:5432/m"
    assert config.registration.enabled is True
    assert len(config.registration.shared_secret) >= 32
    # Every key carries a comment line just above it.
    lines = out.read_text().splitlines()
    for i, line in enumerate(lines):
        if line.strip() and not line.lstrip().startswith("#"):
            assert lines[i - 1].lstrip().startswith("#"), line
    # Never overwrites.
    again = run_cli("generate-config", "--server-name", "x.org", "--output", str(out),
                    cwd=tmp_path)
    assert again.returncode == 1 and "already exists" in again.stderr


def test_generate_config_rejects_bad_values(tmp_path: Path) -> None:
    for args, word in ((["--server-name", "bad name!"], "server_name"),
                       (["--server-name", "ok.org", "--listen", "nope"], "--listen"),
                       (["--server-name", "ok.org", "--database", "mysql://x"], "--database")):
        result = run_cli("generate-config", *args, "--output", str(tmp_path / "c.yaml"),
                         cwd=tmp_path)
        assert result.returncode == 1
        assert word in result.stderr
        assert "Traceback" not in result.stderr


def test_bad_config_stops_startup_with_one_line(tmp_path: Path) -> None:
    cases = {
        "unknown_key: 1\n": "unknown_key: unknown key",
        "listen:\n  port: eighty\n": "listen.port: expected an integer, got 'eighty'",
        "listen:\n  port: 99999\n": "listen.port: expected a port number",
        "database:\n  engine: oracle\n": "database.engine: expected one of",
        "rate_limits:\n  message:\n    burst: -1\n": "rate_limits.message.burst",
        "logging: [1, 2]\n": "logging: expected a mapping",
        "server_name: [\n": "not valid YAML",
        "database:\n  engine: postgresql\n": "database.postgres_dsn",
    }
    for text, expected in cases.items():
        path = tmp_path / "bad.yaml"
        path.write_text(text)
        result = run_cli("run", "--config", str(path), cwd=tmp_path)
        assert result.returncode == 1, text
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert expected in lines[0], (text, lines[0])


def test_register_user_then_login(tmp_path: Path) -> None:
    port = free_port()
    config = generate_config(tmp_path, port=port, bcrypt_rounds=4)

    result = run_cli("register-user", "alice", "--password", "s3cret", "--admin",
                     "--config", str(config), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "@alice:example.test" in result.stdout
    dup = run_cli("register-user", "@alice:example.test", "--password", "x", "--config",
                  str(config), cwd=tmp_path)
    assert dup.returncode == 1 and "M_USER_IN_USE" in dup.stderr
    bad = run_cli("register-user", "Not Valid", "--password", "x", "--config", str(config),
                  cwd=tmp_path)
    assert bad.returncode == 1 and "M_INVALID_USERNAME" in bad.stderr
    prompted = run_cli("register-user", "bob", "--config", str(config), cwd=tmp_path,
                       input="pw\npw\n")
    assert prompted.returncode == 0, prompted.stderr

    server = ServerProcess("--config", str(config), cwd=tmp_path, port=port)
    try:
        server.wait_ready()
        status, body = http_post(server.url + "/_matrix/client/v3/login", {
            "type": "m.login.password", "identifier": {"type": "m.id.user", "user": "alice"},
            "password": "s3cret"})
        assert status == 200, body
        status, who = http_get(server.url + "/_matrix/client/v3/account/whoami",
                               body["access_token"])
        assert status == 200 and who["user_id"] == "@alice:example.test"
        status, _ = http_post(server.url + "/_matrix/client/v3/login", {
            "type": "m.login.password", "user": "bob", "password": "pw"})
        assert status == 200
    finally:
        assert server.stop()[0] == 0


def test_migrate_is_idempotent(tmp_path: Path) -> None:
    config = generate_config(tmp_path)
    first = run_cli("migrate", "--config", str(config), cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert ALL_MIGRATIONS in first.stdout
    second = run_cli("migrate", "--config", str(config), cwd=tmp_path)
    assert second.returncode == 0
    assert "Applied" not in second.stdout and "schema is at version" in second.stdout


def test_missing_config_file(tmp_path: Path) -> None:
    result = run_cli("run", "--config", str(tmp_path / "nope.yaml"), cwd=tmp_path)
    assert result.returncode == 1 and "cannot read config file" in result.stderr


def test_unreachable_database_is_one_line(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    config = generate_config(
        tmp_path, extra=("--database", f"postgresql://myelin:hunter2@127.0.0.1:{port}/myelin"))
    result = run_cli("run", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot connect to PostgreSQL" in lines[0], result.stderr
    assert "hunter2" not in result.stderr

    (tmp_path / "blocker").write_text("a file where a folder should be")
    sqlite = tmp_path / "sqlite.yaml"
    sqlite.write_text("database:\n  sqlite_path: blocker/homeserver.db\n")
    result = run_cli("migrate", "--config", str(sqlite), cwd=tmp_path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


async def test_cli_on_postgresql(tmp_path: Path, fresh_postgres_dsn: str) -> None:
    """generate-config --database postgresql://..., migrate, register-user, run, login."""
    port = free_port()
    config = generate_config(tmp_path, port=port, extra=("--database", fresh_postgres_dsn))
    migrated = run_cli("migrate", "--config", str(config), cwd=tmp_path)
    assert migrated.returncode == 0 and ALL_MIGRATIONS in migrated.stdout
    assert run_cli("register-user", "pat", "--password", "pw", "--config", str(config),
                   cwd=tmp_path).returncode == 0
    server = ServerProcess("--config", str(config), cwd=tmp_path, port=port)
    try:
        server.wait_ready()
        status, body = http_post(server.url + "/_matrix/client/v3/login", {
            "type": "m.login.password", "user": "pat", "password": "pw"})
        assert status == 200 and body["user_id"] == "@pat:example.test"
    finally:
        assert server.stop()[0] == 0
    assert not (tmp_path / "homeserver.db").exists()  # nothing went to SQLite
