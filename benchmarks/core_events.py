"""Micro-benchmark of the per-event protocol core: hashing, event IDs, signing, verifying.

Every PDU we send is content-hashed, signed and given a reference-hash event ID; every PDU we
receive is signature-checked, content-hash-checked and given its event ID. This script times
those steps on a realistic ~1 KB room version 12 ``m.room.message`` and prints one JSON line
(microseconds per event, best batch of several, so other load on the machine shows less).

    /work/venv/bin/python benchmarks/core_events.py [--events N] [--repeats R]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable
from typing import Any

import nacl.signing

from myelin.core.canonical_json import encode_canonical_json
from myelin.core.event_format import validate_pdu
from myelin.core.events import compute_event_id
from myelin.core.hashing import check_content_hash
from myelin.core.redaction import redact_for_signing
from myelin.core.room_versions import V12
from myelin.core.signing import sign_event, sign_event_with_id, verify_event_signature

SERVER = "example.org"
KEY_ID = "ed25519:a_bench"
ROOM_ID = "!" + "Nhcu5BS-UMnFX7hBVfVSoXiD7OgH6iRT-xyIuqDnpYQ"


def message_event(n: int) -> dict[str, Any]:
    """An unsigned v12 m.room.message of about 1 KB once hashed and signed."""
    body = (
        f"Message {n}: the quick brown fox jumps over the lazy dog, and then writes a long "
        "paragraph about federation, canonical JSON and ed25519 signatures. Émojis too: ☕ 🦊 "
    )
    return {
        "type": "m.room.message",
        "room_id": ROOM_ID,
        "sender": "@alice:example.org",
        "origin_server_ts": 1_760_000_000_000 + n,
        "depth": 4200 + n,
        "auth_events": [
            "$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g",
            "$b2Zhbm90aGVyZXZlbnRvZmFub3RoZXJldmVudG9mYW4",
            "$dGhpcmRldmVudGlkZW50aWZpZXJoZXJlZm9yYXV0aDA",
        ],
        "prev_events": ["$cHJldmlvdXNldmVudGlkZW50aWZpZXJnb2VzaGVyZWE"],
        "content": {
            "msgtype": "m.text",
            "body": body * 2,
            "format": "org.matrix.custom.html",
            "formatted_body": f"<p><strong>Message {n}</strong>: {body}</p>",
            "m.mentions": {"user_ids": ["@bob:example.org"]},
        },
        "unsigned": {"age_ts": 1_760_000_000_000},
    }


def best_us_per_event(step: Callable[[Any], object], inputs: list[Any], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter_ns()
        for item in inputs:
            step(item)
        best = min(best, (time.perf_counter_ns() - start) / len(inputs) / 1000)
    return round(best, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    key = nacl.signing.SigningKey(bytes(range(32)))
    verify_key = key.verify_key
    events = [message_event(n) for n in range(args.events)]

    def hash_sign_and_id(event: dict[str, Any]) -> str:
        # content hash + sign + reference hash (reusing the signed bytes)
        return sign_event_with_id(event, V12, SERVER, key, KEY_ID)[1]

    def hash_sign_then_id(event: dict[str, Any]) -> str:
        signed = sign_event(event, V12, SERVER, key, KEY_ID)  # content hash + sign
        return compute_event_id(signed, V12)  # reference hash, computed from scratch

    def verify(event: dict[str, Any]) -> None:
        verify_event_signature(event, V12, SERVER, KEY_ID, verify_key)

    def receive(event: dict[str, Any]) -> str:
        validate_pdu(event, V12)
        verify_event_signature(event, V12, SERVER, KEY_ID, verify_key)
        if not check_content_hash(event):
            raise AssertionError("content hash mismatch")
        return compute_event_id(event, V12)

    signed = [sign_event(e, V12, SERVER, key, KEY_ID) for e in events]
    for event in signed:  # sanity: everything we time must actually succeed
        receive(event)
    # The raw ed25519 floor, over the same number of distinct ~1 KB messages.
    messages = [encode_canonical_json(redact_for_signing(e, V12)) for e in signed]
    signatures = [(m, key.sign(m).signature) for m in messages]

    hash_sign = best_us_per_event(hash_sign_and_id, events, args.repeats)
    hash_sign_separately = best_us_per_event(hash_sign_then_id, events, args.repeats)
    verify_only = best_us_per_event(verify, signed, args.repeats)
    receive_all = best_us_per_event(receive, signed, args.repeats)
    raw_sign = best_us_per_event(key.sign, messages, args.repeats)
    raw_verify = best_us_per_event(lambda pair: verify_key.verify(*pair), signatures, args.repeats)
    print(
        json.dumps(
            {
                "event_bytes": len(encode_canonical_json(signed[0])),
                "events": len(events),
                "hash_sign_and_event_id_us": hash_sign,
                "sign_event_then_compute_event_id_us": hash_sign_separately,
                "verify_us": verify_only,
                "hash_sign_verify_total_us": round(hash_sign + verify_only, 2),
                "receive_validate_verify_hash_id_us": receive_all,
                "raw_ed25519_sign_us": raw_sign,
                "raw_ed25519_verify_us": raw_verify,
                "python": platform.python_version(),
            }
        )
    )


if __name__ == "__main__":
    main()
