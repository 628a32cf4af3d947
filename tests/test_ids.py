from __future__ import annotations

import pytest

from myelin.errors import MatrixError
from myelin.ids import UserID, is_valid_server_name


@pytest.mark.parametrize("name", ["matrix.org", "matrix.org:8888", "1.2.3.4", "1.2.3.4:1234",
                                  "[1234:5678::abcd]", "[1234:5678::abcd]:5678", "localhost:8008"])
def test_valid_server_names(name: str) -> None:
    assert is_valid_server_name(name)


@pytest.mark.parametrize("name", ["", "a b", "host:", "host:99999", "host:0x1", "[::1", "[zz::]",
                                  "[::1]x", "x" * 256, "ex_ample.org"])
def test_invalid_server_names(name: str) -> None:
    assert not is_valid_server_name(name)


def test_user_id_round_trip() -> None:
    user = UserID.parse("@alice:example.org:8448")
    assert (user.localpart, user.domain) == ("alice", "example.org:8448")
    assert str(user) == "@alice:example.org:8448"


def test_historical_localparts_accepted_from_peers() -> None:
    assert UserID.parse("@Alice!:example.org").localpart == "Alice!"


@pytest.mark.parametrize(
    "text", ["alice:x", "@:x", "@a", "@a:b c", "@a b:x", "@" + "a" * 260 + ":x"]
)
def test_invalid_user_ids(text: str) -> None:
    with pytest.raises(MatrixError):
        UserID.parse(text)


def test_new_local_users_follow_strict_grammar() -> None:
    assert str(UserID.for_new_local_user("a.b=c_d-e/f+g", "x")) == "@a.b=c_d-e/f+g:x"
    for bad in ("Alice", "a b", "", "é"):
        with pytest.raises(MatrixError) as info:
            UserID.for_new_local_user(bad, "x")
        assert info.value.errcode == "M_INVALID_USERNAME"
