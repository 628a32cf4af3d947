"""Auth chains, auth difference, conflicted state subgraph and the restricted auth DAG, checked
against the spec's definitions computed naively on random DAGs."""

from __future__ import annotations

from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from myelin.core.events import PDU
from myelin.core.room_versions import V11
from myelin.core.state_res import MissingEventError
from myelin.core.state_res.auth_chain import (
    EventGraph,
    auth_ancestors,
    auth_difference,
    conflicted_state_subgraph,
    nearest_ancestors_within,
)

from event_builders import make_event


def dag_events(parents: dict[str, list[str]]) -> dict[str, PDU]:
    return {
        eid: make_event(V11, eid, "m.test", "@a:x", state_key=eid, auth_events=auth)
        for eid, auth in parents.items()
    }


@st.composite
def random_dags(draw: st.DrawFn) -> dict[str, list[str]]:
    """Nodes $0..$n-1; each cites some earlier nodes."""
    n = draw(st.integers(1, 14))
    parents: dict[str, list[str]] = {}
    for i in range(n):
        earlier = [f"${j}" for j in range(i)]
        parents[f"${i}"] = draw(st.lists(st.sampled_from(earlier), unique=True, max_size=3)) \
            if earlier else []
    return parents


def naive_chain(parents: dict[str, list[str]], event_id: str) -> set[str]:
    out: set[str] = set()
    for p in parents[event_id]:
        out |= {p} | naive_chain(parents, p)
    return out


def test_chain_of_a_line() -> None:
    graph = EventGraph(dag_events({"$a": [], "$b": ["$a"], "$c": ["$b"], "$d": ["$c"]}))
    assert auth_ancestors(graph, ["$d"]) == {"$a", "$b", "$c"}
    assert auth_ancestors(graph, ["$d"], stop={"$b"}) == {"$c"}


def test_auth_difference_of_a_line() -> None:
    """D -> C -> B -> A; sets {A, B} and {C, D}: chains {A} and {A, B, C}."""
    graph = EventGraph(dag_events({"$a": [], "$b": ["$a"], "$c": ["$b"], "$d": ["$c"]}))
    assert auth_difference(graph, [["$a", "$b"], ["$c", "$d"]]) == {"$b", "$c"}


def test_missing_event_is_named() -> None:
    graph = EventGraph(dag_events({"$b": ["$gone"]}))
    with pytest.raises(MissingEventError) as info:
        auth_ancestors(graph, ["$b"])
    assert info.value.event_id == "$gone"
    assert "$gone" in str(info.value)
    assert isinstance(info.value, KeyError)


@given(random_dags(), st.data())
def test_auth_difference_matches_the_definition(
    parents: dict[str, list[str]], data: st.DataObject
) -> None:
    ids = sorted(parents)
    sets = data.draw(st.lists(st.lists(st.sampled_from(ids), unique=True), min_size=1,
                              max_size=4))
    chains = [set().union(*(naive_chain(parents, e) for e in s)) for s in sets]
    expected = set().union(*chains) - chains[0].intersection(*chains[1:])
    assert auth_difference(EventGraph(dag_events(parents)), sets) == expected


@given(random_dags(), st.data())
def test_conflicted_state_subgraph_matches_the_definition(
    parents: dict[str, list[str]], data: st.DataObject
) -> None:
    ids = sorted(parents)
    conflicted = set(data.draw(st.lists(st.sampled_from(ids), unique=True)))

    def reaches(x: str, y: str) -> bool:  # y is x or in x's auth chain
        return x == y or y in naive_chain(parents, x)

    expected = {
        x for x in ids
        if any(reaches(c1, x) and reaches(x, c2) for c1 in conflicted for c2 in conflicted)
    }
    assert conflicted_state_subgraph(EventGraph(dag_events(parents)), conflicted) == expected


@given(random_dags(), st.data())
def test_restricted_dag_keeps_ancestry(parents: dict[str, list[str]], data: st.DataObject) -> None:
    ids = sorted(parents)
    subset = set(data.draw(st.lists(st.sampled_from(ids), unique=True)))
    restricted = nearest_ancestors_within(EventGraph(dag_events(parents)), subset)

    def closure(x: str) -> set[str]:
        out: set[str] = set()
        for p in restricted[x]:
            out |= {p} | closure(p)
        return out

    for x in subset:
        assert closure(x) == naive_chain(parents, x) & subset


def test_restricted_dag_of_a_line_skips_outsiders() -> None:
    ids = ["$a", "$b", "$c", "$d"]
    graph = EventGraph(dag_events({x: [p] for p, x in pairwise(ids)} | {"$a": []}))
    assert nearest_ancestors_within(graph, {"$a", "$d"}) == {"$a": set(), "$d": {"$a"}}
