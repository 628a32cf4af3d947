from __future__ import annotations

from typing import Any

import pytest

from myelin.api.http.endpoint import Endpoint
from myelin.api.http.router import MethodNotAllowed, Router


async def _noop(request: Any) -> None:
    return None


def ep(method: str, path: str) -> Endpoint:
    return Endpoint(method, (path,), _noop, name=f"{method} {path}")


def test_match_static_and_parameters() -> None:
    router = Router([ep("GET", "/a/{x}/c"), ep("PUT", "/a/{x}/c"), ep("GET", "/a/b/{y}")])
    m = router.match("GET", "/a/b/c")
    assert m is not None and m.endpoint.paths == ("/a/b/{y}",) and m.params == {"y": "c"}
    m = router.match("PUT", "/a/b/c")
    assert m is not None and m.params == {"x": "b"}


def test_backtracks_from_literal_to_parameter() -> None:
    router = Router([ep("GET", "/a/b/z"), ep("GET", "/a/{x}/c")])
    m = router.match("GET", "/a/b/c")
    assert m is not None and m.params == {"x": "b"}


def test_not_found_and_method_not_allowed() -> None:
    router = Router([ep("GET", "/a"), ep("POST", "/a")])
    assert router.match("GET", "/b") is None
    assert router.match("GET", "/a/") is None
    with pytest.raises(MethodNotAllowed) as info:
        router.match("DELETE", "/a")
    assert info.value.allowed == ["GET", "POST"]


def test_head_falls_back_to_get() -> None:
    router = Router([ep("GET", "/a")])
    assert router.match("HEAD", "/a") is not None


def test_empty_trailing_parameter_is_allowed() -> None:
    # State keys may be empty: /state/{type}/ has an empty last segment.
    router = Router([ep("GET", "/state/{type}/{key}")])
    m = router.match("GET", "/state/m.room.name/")
    assert m is not None and m.params == {"type": "m.room.name", "key": ""}


def test_duplicate_registration_is_refused() -> None:
    with pytest.raises(ValueError):
        Router([ep("GET", "/a"), ep("GET", "/a")])
