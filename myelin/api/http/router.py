"""Path routing over the raw (still percent-encoded) request path.

Matrix path parameters may contain ``/`` encoded as ``%2F`` (state keys, transaction IDs), so
segments are split on the raw path and only then unquoted: routing on a decoded path would send
``/state/m.room.member/%2Fweird`` to the wrong place. A segment trie makes a match cost the
path's depth, not the number of endpoints.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import unquote

from myelin.api.http.endpoint import Endpoint


@dataclass
class _Node:
    literals: dict[str, _Node] = field(default_factory=dict)
    variable: _Node | None = None
    variable_name: str = ""
    methods: dict[str, Endpoint] = field(default_factory=dict)


@dataclass(frozen=True)
class Match:
    endpoint: Endpoint
    params: dict[str, str]


class MethodNotAllowed(Exception):
    def __init__(self, allowed: list[str]) -> None:
        super().__init__(", ".join(allowed))
        self.allowed = allowed


class Router:
    def __init__(self, endpoints: list[Endpoint]) -> None:
        self._root = _Node()
        for endpoint in endpoints:
            for path in endpoint.paths:
                self._add(path, endpoint)

    def _add(self, path: str, endpoint: Endpoint) -> None:
        node = self._root
        for segment in path.split("/")[1:]:
            if segment.startswith("{") and segment.endswith("}"):
                name = segment[1:-1]
                if node.variable is None:
                    node.variable, node.variable_name = _Node(), name
                elif node.variable_name != name:
                    raise ValueError(
                        f"{path}: parameter {name!r} clashes with {node.variable_name!r}"
                    )
                node = node.variable
            else:
                node = node.literals.setdefault(segment, _Node())
        if endpoint.method in node.methods:
            raise ValueError(f"{endpoint.method} {path} is registered twice")
        node.methods[endpoint.method] = endpoint

    def match(self, method: str, raw_path: str) -> Match | None:
        """The endpoint for ``method`` at ``raw_path``; None if no endpoint has this path.

        Raises MethodNotAllowed when the path exists but not for this method.
        """
        lookup = "GET" if method == "HEAD" else method
        segments = raw_path.split("/")[1:]
        found = self._find(self._root, segments, 0, [], lookup)
        if found is not None:
            node, values = found
            return Match(node.methods[lookup], dict(values))
        allowed = self._find(self._root, segments, 0, [], None)
        if allowed is not None:
            raise MethodNotAllowed(sorted(allowed[0].methods))
        return None

    def _find(
        self,
        node: _Node,
        segments: list[str],
        i: int,
        values: list[tuple[str, str]],
        method: str | None,
    ) -> tuple[_Node, list[tuple[str, str]]] | None:
        """Depth-first, literals before parameters; ``method=None`` accepts any endpoint."""
        if i == len(segments):
            ok = method in node.methods if method is not None else bool(node.methods)
            return (node, values) if ok else None
        segment = segments[i]
        child = node.literals.get(segment)
        if child is not None:
            found = self._find(child, segments, i + 1, values, method)
            if found is not None:
                return found
        if node.variable is not None:
            values.append((node.variable_name, unquote(segment, errors="strict")))
            found = self._find(node.variable, segments, i + 1, values, method)
            if found is not None:
                return found
            values.pop()
        return None
