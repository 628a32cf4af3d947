"""The server's ed25519 signing key, kept in Synapse's key-file format.

Server-server API, "Retrieving server keys": other servers cache our verify key, so losing or
silently replacing it breaks federation for every room we are in. The file format is Synapse's
(``ed25519 <version> <unpadded base64 seed>`` per line) so an admin moving from Synapse can bring
the key along unchanged.
"""

from __future__ import annotations

import os
import secrets
import string
from dataclasses import dataclass
from pathlib import Path

import nacl.signing

from myelin.core.signing import decode_base64, encode_base64


class SigningKeyError(Exception):
    """The key file is missing when it must exist, or cannot be read."""


@dataclass(frozen=True)
class SigningKey:
    version: str  # e.g. "a_4GjT"; the key ID is "ed25519:" + version
    signing_key: nacl.signing.SigningKey

    @property
    def key_id(self) -> str:
        return f"ed25519:{self.version}"

    @property
    def verify_key_base64(self) -> str:
        return encode_base64(bytes(self.signing_key.verify_key))


def generate_version() -> str:
    alphabet = string.ascii_letters + string.digits
    return "a_" + "".join(secrets.choice(alphabet) for _ in range(4))


def parse_key_file(text: str) -> list[SigningKey]:
    keys = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 3 or parts[0] != "ed25519":
            raise SigningKeyError(f"line {number}: expected 'ed25519 <version> <base64 seed>'")
        try:
            seed = decode_base64(parts[2])
        except ValueError as e:
            raise SigningKeyError(f"line {number}: the seed is not valid base64") from e
        if len(seed) != 32:
            raise SigningKeyError(f"line {number}: the seed must be 32 bytes, got {len(seed)}")
        keys.append(SigningKey(parts[1], nacl.signing.SigningKey(seed)))
    if not keys:
        raise SigningKeyError("the file holds no key")
    return keys


def write_key_file(path: Path, key: SigningKey) -> None:
    """Create the file readable by its owner only; never overwrite an existing one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    line = f"ed25519 {key.version} {encode_base64(bytes(key.signing_key))}\n"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(line)


def load_or_create(path: Path, *, may_create: bool) -> tuple[SigningKey, bool]:
    """Return (the first key in ``path``, whether it was just created).

    ``may_create`` is False once the database records that this server already had a key: a
    missing file is then an operator mistake to report, not a reason to mint a new identity.
    """
    if path.exists():
        try:
            text = path.read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as e:
            raise SigningKeyError(f"cannot read signing key {path}: {e}") from e
        try:
            return parse_key_file(text)[0], False
        except SigningKeyError as e:
            raise SigningKeyError(f"signing key {path}: {e}") from None
    if not may_create:
        raise SigningKeyError(
            f"signing key {path} is missing, but this server already had one; restore the file "
            "(other servers know this server by it) or point signing_key_path at it"
        )
    key = SigningKey(generate_version(), nacl.signing.SigningKey.generate())
    write_key_file(path, key)
    return key, True
