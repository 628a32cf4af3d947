from __future__ import annotations

import stat
from pathlib import Path

import pytest

from myelin.signing_key import SigningKeyError, load_or_create, parse_key_file

# Appendices, "Cryptographic Test Vectors": the seed every signing vector uses.
SPEC_SEED = "YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1"


def test_spec_seed_parses_in_synapse_format() -> None:
    key = parse_key_file(f"ed25519 1 {SPEC_SEED}\n")[0]
    assert key.key_id == "ed25519:1"
    # The spec's JSON-signing vector for {} is made with this key; check its verify key shape.
    assert len(key.verify_key_base64) == 43


def test_create_then_load_same_key(tmp_path: Path) -> None:
    path = tmp_path / "k" / "signing.key"
    key, created = load_or_create(path, may_create=True)
    assert created and stat.S_IMODE(path.stat().st_mode) == 0o600
    again, created_again = load_or_create(path, may_create=True)
    assert not created_again
    assert bytes(again.signing_key) == bytes(key.signing_key) and again.version == key.version


def test_missing_key_when_one_existed_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SigningKeyError, match="missing"):
        load_or_create(tmp_path / "signing.key", may_create=False)
    assert not (tmp_path / "signing.key").exists()


@pytest.mark.parametrize("text", ["", "ed25519 a_x\n", "rsa a_x AAAA\n", "ed25519 a_x !!!\n",
                                  "ed25519 a_x AAAA\n"])
def test_bad_key_files_are_refused(tmp_path: Path, text: str) -> None:
    path = tmp_path / "signing.key"
    path.write_text(text)
    with pytest.raises(SigningKeyError):
        load_or_create(path, may_create=True)
    assert path.read_text() == text  # never overwritten
