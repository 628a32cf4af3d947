"""SIGTERM lets in-flight requests finish and closes the database cleanly."""

from __future__ import annotations

import signal
import socket
import time
from pathlib import Path

from cli_harness import ServerProcess, free_port, generate_config, run_cli


def test_sigterm_finishes_in_flight_request(tmp_path: Path) -> None:
    port = free_port()
    # A slow password hash makes the login below a request that is still being worked on
    # (hashing in a thread) when the signal arrives.
    config = generate_config(tmp_path, port=port, bcrypt_rounds=14)
    assert run_cli("register-user", "alice", "--password", "pw", "--config", str(config),
                   cwd=tmp_path).returncode == 0
    server = ServerProcess("--config", str(config), cwd=tmp_path, port=port)
    server.wait_ready()
    body = b'{"type": "m.login.password", "user": "alice", "password": "pw"}'
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(b"POST /_matrix/client/v3/login HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Type: application/json\r\nConnection: close\r\n"
                     b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        time.sleep(0.2)
        started = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        response = b""
        while chunk := sock.recv(4096):
            response += chunk
    assert response.startswith(b"HTTP/1.1 200"), response[:300]
    assert b"access_token" in response
    code, output = server.stop()
    assert code == 0, output
    assert "stopped" in output
    assert time.monotonic() - started < 10
    assert not (tmp_path / "homeserver.db-wal").exists()
    # New connections are refused once shutdown has begun.
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0
