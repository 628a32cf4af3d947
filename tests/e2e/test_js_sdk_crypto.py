"""matrix-js-sdk with its Rust crypto (matrix-sdk-crypto-wasm) against a fresh ``myelin run``.

Node.js runs ``js/crypto_roundtrip.mjs``: alice and bob register, each client initialises the
Rust crypto stack (in memory) and syncs; alice creates a megolm-encrypted room and invites bob,
who joins; alice sends an encrypted text that bob's client decrypts, bob replies and alice
decrypts. Then alice bootstraps cross-signing (UIA with m.login.password for
/keys/device_signing/upload), secret storage and a new key backup, and her room keys are
uploaded to the backup. The script prints one JSON line; the test asserts it, asks the server for
the backed-up keys itself, and checks that the plaintext never reached the server's database.

The npm packages are installed by the ``node`` fixture (tests/js_clients.py).
"""

from __future__ import annotations

import json
import secrets
import sqlite3
from pathlib import Path
from typing import Any

from cli_harness import ServerProcess, http_get
from js_clients import JS_DIR, run_node_script

SCRIPT = JS_DIR / "crypto_roundtrip.mjs"
SCRIPT_TIMEOUT = 60


def run_script(node: str, server: ServerProcess, marker: str) -> dict[str, Any]:
    return run_node_script(node, SCRIPT, "--base-url", server.url, "--marker", marker,
                           "--timeout", str(SCRIPT_TIMEOUT), timeout=SCRIPT_TIMEOUT)


def explain(report: dict[str, Any]) -> str:
    shown = {k: v for k, v in report.items() if k not in ("_stderr", "alice")}
    return (json.dumps(shown, indent=1, ensure_ascii=False)
            + f"\n--- node stderr (tail) ---\n{report['_stderr']}")


def test_js_sdk_rust_crypto_roundtrip_cross_signing_and_backup(
        node: str, js_server: ServerProcess, tmp_path: Path) -> None:
    server = js_server
    marker = f"plaintext-{secrets.token_hex(8)}"
    report = run_script(node, server, marker)
    assert report["ok"] and report["_exit"] == 0, explain(report)

    # Both messages went over the wire encrypted and were decrypted by the other side.
    for slot in ("alice_to_bob", "bob_to_alice"):
        leg = report[slot]
        assert leg["wire_type"] == "m.room.encrypted", explain(report)
        assert leg["decrypted_body"] == leg["sent"] and marker in leg["sent"], explain(report)

    # Cross-signing: keys generated, cached, published (bob downloaded them from the server).
    status = report["cross_signing"]
    assert status["publicKeysOnDevice"] and status["privateKeysInSecretStorage"], explain(report)
    assert all(status["privateKeysCachedLocally"].values()), explain(report)
    assert report["cross_signing_ready"], explain(report)
    assert report["server_has_cross_signing_keys"], explain(report)
    assert report["secret_storage_ready"], explain(report)

    # Key backup: a version exists, is active, and holds the room key.
    backup = report["backup"]
    version = backup["active_version"]
    assert version and backup["version"] == version, explain(report)
    assert backup["check"]["version"] == version and backup["check"]["trusted"], explain(report)
    assert backup["server_sessions"] >= 1, explain(report)

    token = report["alice"]["access_token"]
    status_code, body = http_get(f"{server.url}/_matrix/client/v3/room_keys/version", token)
    assert status_code == 200 and body["version"] == version, body
    assert body["algorithm"] == "m.megolm_backup.v1.curve25519-aes-sha2", body
    status_code, body = http_get(
        f"{server.url}/_matrix/client/v3/room_keys/keys?version={version}", token)
    assert status_code == 200, body
    sessions = body["rooms"][report["room_id"]]["sessions"]
    assert sessions, body
    for session in sessions.values():
        expected = {"first_message_index", "forwarded_count", "is_verified", "session_data"}
        assert expected <= set(session), session
        assert "ciphertext" in session["session_data"]

    # The only error answers were the registration UIA challenges and "no backup yet" (asked
    # before the backup is created).
    for entry in report["http"]["non_2xx"]:
        status, path = entry["status"], entry["path"]
        body = json.loads(entry.get("body") or "{}")
        uia = status == 401 and path.endswith("/register") and "flows" in body
        no_backup = (status == 404 and path.endswith("/room_keys/version")
                     and body.get("errcode") == "M_NOT_FOUND")
        assert uia or no_backup, f"unexpected response {entry}"

    # The plaintext never reached the server's storage.
    dbs = list(tmp_path.rglob("homeserver.db"))
    assert dbs, list(tmp_path.rglob("*"))
    with sqlite3.connect(dbs[0]) as db:
        events = [row[0] for row in db.execute("SELECT json FROM events")]
        to_device = [row[0] for row in db.execute("SELECT content FROM to_device_messages")]
    # (to-device messages are deleted once delivered, so that table may well be empty by now)
    assert events
    for blob in [*events, *to_device]:
        text = blob if isinstance(blob, str) else bytes(blob).decode("utf-8", "replace")
        assert marker not in text
    encrypted = [json.loads(e) for e in events if '"m.room.encrypted"' in e]
    assert len(encrypted) >= 2, events  # alice's message and bob's reply, as megolm ciphertext
    assert all(e["content"]["algorithm"] == "m.megolm.v1.aes-sha2" for e in encrypted)
