"""Password hashing with bcrypt, run off the event loop.

bcrypt rather than argon2id because Synapse stores bcrypt hashes: accounts migrated from a
Synapse database keep working, and benchmarks can set the same cost on both servers. Hashing
takes tens of milliseconds by design, so it runs in a worker thread where it cannot stall
every other request.
"""

from __future__ import annotations

import asyncio

import bcrypt


def _hash(password: str, rounds: int) -> str:
    return bcrypt.hashpw(password.encode("utf-8"), bcrypt.gensalt(rounds)).decode("ascii")


def _check(password: str, password_hash: str) -> bool:
    try:
        return bcrypt.checkpw(password.encode("utf-8"), password_hash.encode("ascii"))
    except ValueError:  # a malformed stored hash never matches
        return False


async def hash_password(password: str, rounds: int) -> str:
    return await asyncio.to_thread(_hash, password, rounds)


async def check_password(password: str, password_hash: str | None) -> bool:
    if not password_hash:
        return False
    return await asyncio.to_thread(_check, password, password_hash)
