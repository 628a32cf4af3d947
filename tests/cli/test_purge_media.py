"""`myelin purge-media`: one retention pass from the command line."""

from __future__ import annotations

import json
import sqlite3
import time
import urllib.request
from pathlib import Path

from cli_harness import ServerProcess, free_port, generate_config, run_cli


def test_purge_media_deletes_old_media_and_its_file(tmp_path: Path) -> None:
    port = free_port()
    config = generate_config(tmp_path, port=port, bcrypt_rounds=4)
    assert run_cli("register-user", "alice", "--password", "pw", "--config", str(config),
                   cwd=tmp_path).returncode == 0
    server = ServerProcess("--config", str(config), cwd=tmp_path, port=port)
    try:
        server.wait_ready()
        login = urllib.request.Request(
            server.url + "/_matrix/client/v3/login", method="POST",
            data=json.dumps({"type": "m.login.password", "user": "alice",
                             "password": "pw"}).encode())
        with urllib.request.urlopen(login) as resp:
            token = json.loads(resp.read())["access_token"]
        upload = urllib.request.Request(
            server.url + "/_matrix/media/v3/upload", method="POST", data=b"old bytes",
            headers={"Authorization": f"Bearer {token}", "Content-Type": "text/plain"})
        with urllib.request.urlopen(upload) as resp:
            media_id = json.loads(resp.read())["content_uri"].rsplit("/", 1)[1]
    finally:
        code, output = server.stop()
        assert code == 0, output
    media_dir = tmp_path / "media"
    assert [p for p in media_dir.rglob("*") if p.is_file()]
    db = sqlite3.connect(tmp_path / "homeserver.db")
    with db:
        db.execute("UPDATE media SET last_access_ts = ? WHERE media_id = ?",
                   (int((time.time() - 3 * 86400) * 1000), media_id))
    db.close()

    kept = run_cli("purge-media", "--config", str(config), "--local-days", "5", cwd=tmp_path)
    assert kept.returncode == 0, kept.stderr
    assert "local media 0" in kept.stdout
    purged = run_cli("purge-media", "--config", str(config), "--local-days", "2", cwd=tmp_path)
    assert purged.returncode == 0, purged.stderr
    assert "local media 1" in purged.stdout and "blobs deleted 1" in purged.stdout
    assert not [p for p in media_dir.rglob("*") if p.is_file()]


def test_purge_media_refuses_negative_days(tmp_path: Path) -> None:
    config = generate_config(tmp_path)
    result = run_cli("purge-media", "--config", str(config), "--remote-days", "-1",
                     cwd=tmp_path)
    assert result.returncode == 1
    assert "must be >= 0" in result.stderr
