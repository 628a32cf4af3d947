"""matrix-js-sdk, a real Matrix client, against a freshly started ``myelin run``.

Node.js runs ``js/sync_and_paginate.mjs``: two users register, alice creates a room, invites bob
and sends 25 messages; bob's client starts the SDK's own sync loop (``initialSyncLimit: 5``),
alice sends 5 more messages and one ``org.matrix.midi`` event that must reach bob through the
long-poll, and bob paginates his live timeline backwards until the server says it is at the start
of the room. The script prints one JSON line describing what the client saw. It runs once with
every member in /sync and once with ``lazyLoadMembers`` (members then fetched as on opening a room).

The client is unmodified: every request it makes goes to the server as the SDK wrote it (the SDK
fetches GET /pushrules/ before its first /sync and would retry for ever without it).

Node.js (>= 20) and npm are required: a missing one fails the test, it is never skipped. The npm
packages (``js/package-lock.json``, matrix-js-sdk pinned) are installed into ``js/node_modules``
once and reused until the lockfile changes.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from cli_harness import ServerProcess
from js_clients import JS_DIR, run_node_script

SCRIPT = JS_DIR / "sync_and_paginate.mjs"
SCRIPT_TIMEOUT = 60  # the script's own hard limit; the subprocess gets a little more

HISTORY = 25  # sent before bob's client starts
LIVE = 5  # sent while bob's sync loop runs
EXPECTED_BODIES = [f"message {i}" for i in range(1, HISTORY + LIVE + 1)]
LIVE_LATENCY_LIMIT_MS = 3000
MIDI_CONTENT: dict[str, Any] = {
    "format": 1,
    "ticks_per_beat": 480,
    "tracks": [
        {
            "name": "lead ♪ ünïcode 音",
            "events": [
                {"delta": 0, "note_on": [60, 100]},
                {"delta": 480, "note_off": [60, 0]},
                {"delta": 0, "meta": {"tempo_us": 500000, "text": ""}},
            ],
        }
    ],
    "flags": {"loop": False, "muted": None, "tags": []},
    "big": 9007199254740991,
    "negative": -42,
    "empty": {},
}





def run_script(node: str, server: ServerProcess, *extra: str) -> dict[str, Any]:
    return run_node_script(node, SCRIPT, "--base-url", server.url, "--history", str(HISTORY),
                           "--live", str(LIVE), "--midi-content", json.dumps(MIDI_CONTENT),
                           "--timeout", str(SCRIPT_TIMEOUT), *extra, timeout=SCRIPT_TIMEOUT)


def explain(report: dict[str, Any]) -> str:
    shown = {k: report.get(k) for k in ("error", "sync_states", "bodies",
                                        "initial_sync_bodies", "timeline_types", "live")}
    shown["non_2xx"] = report["http"]["non_2xx"]
    shown["last_requests"] = report["http"].get("last")
    return (json.dumps(shown, indent=1, ensure_ascii=False)
            + f"\n--- node stderr (tail) ---\n{report['_stderr']}")


@pytest.mark.parametrize("lazy_members", [False, True], ids=["all-members", "lazy-members"])
def test_js_sdk_sync_loop_and_back_pagination(node: str, js_server: ServerProcess,
                                              lazy_members: bool) -> None:
    extra = ("--lazy-load-members",) if lazy_members else ()
    report = run_script(node, js_server, *extra)
    assert report["ok"] and report["_exit"] == 0, explain(report)

    pinned = json.loads((JS_DIR / "package.json").read_text())["dependencies"]["matrix-js-sdk"]
    assert report["sdk_version"] == pinned

    # The initial sync honoured the inline filter's timeline limit of 5 ...
    assert report["initial_sync_bodies"] == EXPECTED_BODIES[HISTORY - 5:HISTORY], explain(report)
    # ... and back-pagination reached m.room.create with every message exactly once, in order.
    assert report["bodies"] == EXPECTED_BODIES, explain(report)
    assert report["reached_room_create"] and report["pagination_token_exhausted"], explain(report)
    assert report["back_pagination_requests"] >= 2, explain(report)  # it really paginated
    types = report["timeline_types"]
    assert types[0] == "m.room.create" and types[-1] == "org.matrix.midi", explain(report)

    # The custom event came through the sync loop with its content exactly as sent.
    assert report["midi"]["received"] == MIDI_CONTENT
    assert report["midi"]["equal"] is True

    # Live events were pushed to the waiting long-poll, not found by a later poll.
    live = report["live"]
    assert live["arrived_via_sync"], explain(report)
    assert len(live["latencies_ms"]) == LIVE + 1
    assert live["max_latency_ms"] < LIVE_LATENCY_LIMIT_MS, explain(report)

    # Whatever else the SDK asked for, the server never broke: only UIA challenges and
    # "unknown endpoint" answers, which the SDK tolerates.
    for entry in report["http"]["non_2xx"]:
        status, path = entry["status"], entry["path"]
        uia = status == 401 and path.endswith("/register") and '"flows"' in entry.get("body", "")
        unknown = status == 404 and json.loads(entry.get("body") or "{}").get("errcode") == (
            "M_UNRECOGNIZED")
        assert uia or unknown, f"unexpected response {entry}"
    if lazy_members:  # the room's members, fetched as a client does when the room is opened
        assert report["joined_members"] == sorted(report["users"].values()), explain(report)

