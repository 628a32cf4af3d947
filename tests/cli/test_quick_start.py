"""The README quick start, exactly: `myelin run` in an empty folder."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest

from cli_harness import ServerProcess, free_port, generate_config, http_get, run_cli


def port_free(port: int) -> bool:
    with socket.socket() as s:
        # As the server binds: SO_REUSEADDR, so connections in TIME_WAIT don't count as in use.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_myelin_run_in_empty_folder(tmp_path: Path) -> None:
    if not port_free(8008):
        pytest.fail("port 8008 is in use; the quick-start test needs it (stop the other server)")
    server = ServerProcess(cwd=tmp_path, port=8008)
    try:
        server.wait_ready()
        status, body = http_get("http://127.0.0.1:8008/_matrix/client/versions")
        assert status == 200 and "versions" in body
        status, body = http_get("http://127.0.0.1:8008/.well-known/matrix/client")
        assert body == {"m.homeserver": {"base_url": "http://127.0.0.1:8008"}}
    finally:
        code, output = server.stop()
    assert code == 0, output
    data = tmp_path / "myelin-data"
    config = data / "homeserver.yaml"
    assert str(config.resolve()) in output  # it says where the config went
    text = config.read_text()
    assert "server_name: localhost:8008" in text
    assert text.count("\n# ") >= 10  # commented
    assert (data / "homeserver.db").exists()
    key = (data / "signing.key").read_text()
    assert re.fullmatch(r"ed25519 a_[A-Za-z0-9]{4} [A-Za-z0-9+/]{43}\n", key)
    assert not (data / "homeserver.db-wal").exists()  # closed cleanly

    # Second start: same key, nothing regenerated.
    server = ServerProcess(cwd=tmp_path, port=8008)
    try:
        server.wait_ready()
    finally:
        code, output = server.stop()
    assert code == 0, output
    assert (data / "signing.key").read_text() == key
    assert "Wrote a new configuration" not in output


def test_missing_signing_key_is_not_silently_regenerated(tmp_path: Path) -> None:
    port = free_port()
    config = generate_config(tmp_path, port=port)
    assert run_cli("migrate", "--config", str(config), cwd=tmp_path).returncode == 0
    server = ServerProcess("--config", str(config), cwd=tmp_path, port=port)
    server.wait_ready()
    assert server.stop()[0] == 0
    (tmp_path / "signing.key").unlink()
    result = run_cli("run", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 1
    assert "signing key" in result.stderr and "missing" in result.stderr
    assert not (tmp_path / "signing.key").exists()


def test_synapse_key_file_is_accepted(tmp_path: Path) -> None:
    """An admin can bring a key from Synapse: same file format, same key ID served."""
    from myelin.signing_key import parse_key_file

    synapse_key = "ed25519 a_Abcd YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1\n"
    (tmp_path / "signing.key").write_text(synapse_key)
    port = free_port()
    config = generate_config(tmp_path, port=port)
    server = ServerProcess("--config", str(config), cwd=tmp_path, port=port)
    server.wait_ready()
    assert server.stop()[0] == 0
    assert (tmp_path / "signing.key").read_text() == synapse_key
    assert parse_key_file(synapse_key)[0].key_id == "ed25519:a_Abcd"
