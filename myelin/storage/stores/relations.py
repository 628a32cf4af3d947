"""Event relationships and threads (tables ``event_relations`` and ``threads``).

Rows are written with the event itself (``relation_statements``, part of the event's one write
batch). A relation whose child event has been redacted is broken (client-server API,
"Aggregations of child events"), so every read skips children listed in ``redactions``; the
``threads`` row of a thread whose latest event is redacted is moved back to the previous one in
the same batch as the redaction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from myelin.core.events import PDU
from myelin.storage.database import Database, Row, Statement
from myelin.storage.stores.events import topological_bound

THREAD = "m.thread"
_LIVE = "NOT EXISTS (SELECT 1 FROM redactions x WHERE x.redacts = r.event_id)"
_CHUNK = 500  # IN lists stay under both engines' parameter limits


@dataclass(frozen=True, slots=True)
class Relation:
    rel_type: str
    parent_id: str
    key: str | None = None  # m.annotation's aggregation key


def relation_of(content: Mapping[str, Any]) -> Relation | None:
    """The event's relationship, if its ``m.relates_to`` has a string rel_type and event_id."""
    relates_to = content.get("m.relates_to")
    if not isinstance(relates_to, Mapping):
        return None
    rel_type, parent_id = relates_to.get("rel_type"), relates_to.get("event_id")
    if not isinstance(rel_type, str) or not isinstance(parent_id, str):
        return None
    key = relates_to.get("key")
    return Relation(rel_type, parent_id, key if isinstance(key, str) else None)


def thread_root(content: Mapping[str, Any]) -> str | None:
    """The root event ID of the thread the event is in, if it is in one."""
    relation = relation_of(content)
    return relation.parent_id if relation is not None and relation.rel_type == THREAD else None


_UPSERT_THREAD = (
    "INSERT INTO threads (room_id, thread_id, latest_event_id, latest_depth, latest_stream)"
    " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (room_id, thread_id) DO UPDATE SET"
    " latest_event_id = excluded.latest_event_id, latest_depth = excluded.latest_depth,"
    " latest_stream = excluded.latest_stream"
    " WHERE excluded.latest_depth > threads.latest_depth OR (excluded.latest_depth ="
    " threads.latest_depth AND excluded.latest_stream > threads.latest_stream)")
_THREAD_CHILDREN = (
    "FROM event_relations r JOIN events e ON e.event_id = r.event_id"
    " WHERE r.relates_to_id = threads.thread_id AND r.room_id = threads.room_id"
    f" AND r.rel_type = '{THREAD}' AND {_LIVE}")
# Run after the redaction's row is inserted: a thread left with no live event goes, any other
# whose latest event was redacted falls back to its newest live one.
_THREAD_REDACTED = (
    f"DELETE FROM threads WHERE latest_event_id = $1 AND NOT EXISTS (SELECT 1 {_THREAD_CHILDREN})",
    "UPDATE threads SET (latest_event_id, latest_depth, latest_stream) = (SELECT e.event_id,"
    f" e.depth, e.stream_ordering {_THREAD_CHILDREN}"
    " ORDER BY e.depth DESC, e.stream_ordering DESC LIMIT 1) WHERE latest_event_id = $1",
)


def relation_statements(pdu: PDU, stream_ordering: int, *, in_timeline: bool,
                        applied_redaction: bool) -> list[Statement]:
    """The relation rows of a newly persisted event (only timeline events relate)."""
    out: list[Statement] = []
    relation = relation_of(pdu.content) if in_timeline else None
    if relation is not None:
        out.append(Statement(
            "INSERT INTO event_relations (event_id, room_id, relates_to_id, rel_type,"
            " aggregation_key) VALUES ($1, $2, $3, $4, $5)",
            (pdu.event_id, pdu.room_id, relation.parent_id, relation.rel_type, relation.key)))
        if relation.rel_type == THREAD:
            out.append(Statement(_UPSERT_THREAD, (pdu.room_id, relation.parent_id, pdu.event_id,
                                                  pdu.depth, stream_ordering)))
    if applied_redaction and pdu.redacts is not None:
        out += [Statement(sql, (pdu.redacts,)) for sql in _THREAD_REDACTED]
    return out


class RelationStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def _fetch_in(self, sql: str, ids: Sequence[str], *args: Any) -> list[Row]:
        """Run ``sql`` (whose ``{ids}`` becomes an IN list after ``args``) over ``ids``."""
        rows: list[Row] = []
        unique = list(dict.fromkeys(ids))
        for start in range(0, len(unique), _CHUNK):
            chunk = unique[start:start + _CHUNK]
            marks = ", ".join(f"${len(args) + i + 1}" for i in range(len(chunk)))
            rows += await self._db.fetch(sql.format(ids=marks), *args, *chunk)
        return rows

    async def children(self, parent_id: str, room_id: str, *, rel_type: str | None,
                       event_type: str | None, levels: int, position: tuple[int, int],
                       backwards: bool, limit: int) -> list[tuple[str, int, int]]:
        """(event ID, depth, stream) of events relating to ``parent_id`` in its room,
        directly or through up to ``levels`` relations, in topological order from
        ``position`` (newest first with ``backwards``)."""
        args: list[Any] = [parent_id, room_id]
        if levels > 1:
            source = (
                "WITH RECURSIVE related (event_id, level) AS ("
                " SELECT r.event_id, 1 FROM event_relations r"
                f" WHERE r.relates_to_id = $1 AND r.room_id = $2 AND {_LIVE}"
                " UNION SELECT r.event_id, related.level + 1 FROM event_relations r"
                " JOIN related ON r.relates_to_id = related.event_id"
                f" WHERE related.level < {int(levels)} AND r.room_id = $2 AND {_LIVE})"
                " SELECT DISTINCT e.event_id, e.depth, e.stream_ordering FROM related"
                " JOIN event_relations r ON r.event_id = related.event_id"
                " JOIN events e ON e.event_id = r.event_id WHERE e.room_id = $2")
        else:
            source = ("SELECT e.event_id, e.depth, e.stream_ordering FROM event_relations r"
                      " JOIN events e ON e.event_id = r.event_id"
                      f" WHERE r.relates_to_id = $1 AND r.room_id = $2 AND {_LIVE}")
        if rel_type is not None:
            args.append(rel_type)
            source += f" AND r.rel_type = ${len(args)}"
        if event_type is not None:
            args.append(event_type)
            source += f" AND e.type = ${len(args)}"
        bound, order = topological_bound(backwards, len(args) + 1)
        args += [*position, limit]
        rows = await self._db.fetch(
            f"{source} AND NOT e.outlier AND e.rejected_reason IS NULL AND NOT e.soft_failed"
            f" AND {bound}"
            f" ORDER BY e.depth {order}, e.stream_ordering {order} LIMIT ${len(args)}", *args)
        return [(r["event_id"], int(r["depth"]), int(r["stream_ordering"])) for r in rows]

    async def has_relation(self, event_id: str) -> bool:
        """Whether the event relates to another (and is not redacted)."""
        value = await self._db.fetchval(
            f"SELECT 1 FROM event_relations r WHERE r.event_id = $1 AND {_LIVE}", event_id)
        return value is not None

    async def has_annotation(self, parent_id: str, sender: str, event_type: str,
                             key: str) -> bool:
        """Whether ``sender`` already annotated the event with this type and key."""
        value = await self._db.fetchval(
            "SELECT 1 FROM event_relations r JOIN events e ON e.event_id = r.event_id"
            " WHERE r.relates_to_id = $1 AND r.rel_type = 'm.annotation'"
            f" AND r.aggregation_key = $2 AND e.type = $3 AND e.sender = $4 AND {_LIVE}"
            " LIMIT 1",
            parent_id, key, event_type, sender)
        return value is not None

    async def relation_types(self, parent_ids: Sequence[str]) -> dict[str, set[str]]:
        """Parent -> the rel_types of the live relations pointing at it, for the parents
        that have any: most events have none, so one index lookup spares the queries of
        each kind of aggregation."""
        rows = await self._fetch_in(
            "SELECT DISTINCT r.relates_to_id, r.rel_type FROM event_relations r"
            f" WHERE r.relates_to_id IN ({{ids}}) AND {_LIVE}", parent_ids)
        out: dict[str, set[str]] = {}
        for r in rows:
            out.setdefault(r["relates_to_id"], set()).add(r["rel_type"])
        return out

    async def thread_summaries(self, root_ids: Sequence[str]) -> dict[str, tuple[int, str]]:
        """Thread root -> (number of live thread events, latest one) for roots of threads."""
        rows = await self._fetch_in(
            "SELECT t.thread_id, t.latest_event_id, (SELECT COUNT(*) FROM event_relations r"
            " WHERE r.relates_to_id = t.thread_id AND r.room_id = t.room_id"
            f" AND r.rel_type = '{THREAD}' AND {_LIVE}) AS n"
            " FROM threads t JOIN events p ON p.event_id = t.thread_id AND p.room_id = t.room_id"
            " WHERE t.thread_id IN ({ids})", root_ids)
        return {r["thread_id"]: (int(r["n"]), r["latest_event_id"]) for r in rows if r["n"]}

    async def thread_events(self, root_id: str, room_id: str, limit: int) -> list[str]:
        """The thread's live events, newest first."""
        rows = await self._db.fetch(
            "SELECT e.event_id FROM event_relations r JOIN events e ON e.event_id = r.event_id"
            f" WHERE r.relates_to_id = $1 AND r.room_id = $2 AND r.rel_type = '{THREAD}'"
            f" AND {_LIVE} ORDER BY e.depth DESC, e.stream_ordering DESC LIMIT $3",
            root_id, room_id, limit)
        return [r["event_id"] for r in rows]

    async def participated(self, root_ids: Sequence[str], user_id: str) -> set[str]:
        """The roots of threads ``user_id`` sent a (live) thread event to."""
        rows = await self._fetch_in(
            "SELECT DISTINCT r.relates_to_id FROM event_relations r"
            " JOIN events e ON e.event_id = r.event_id"
            f" WHERE r.rel_type = '{THREAD}' AND e.sender = $1 AND {_LIVE}"
            " AND r.relates_to_id IN ({ids})", root_ids, user_id)
        return {r["relates_to_id"] for r in rows}

    async def edit_candidates(self, parent_ids: Sequence[str]) -> list[tuple[str, str]]:
        """(original, edit) pairs passing the replacement rules that SQL can check (same
        room, sender and type, no state key, the original not an edit itself), most recent
        edit first (origin_server_ts, then event ID)."""
        rows = await self._fetch_in(
            "SELECT r.relates_to_id, r.event_id FROM event_relations r"
            " JOIN events e ON e.event_id = r.event_id"
            " JOIN events o ON o.event_id = r.relates_to_id AND o.room_id = e.room_id"
            " AND o.sender = e.sender AND o.type = e.type"
            " WHERE r.rel_type = 'm.replace' AND e.state_key IS NULL AND o.state_key IS NULL"
            f" AND {_LIVE} AND NOT EXISTS (SELECT 1 FROM event_relations oo"
            " WHERE oo.event_id = o.event_id AND oo.rel_type = 'm.replace')"
            " AND r.relates_to_id IN ({ids})"
            " ORDER BY e.origin_server_ts DESC, e.event_id DESC", parent_ids)
        return [(r["relates_to_id"], r["event_id"]) for r in rows]

    async def references(self, parent_ids: Sequence[str]) -> list[tuple[str, str]]:
        """(parent, referencing event) pairs in the parent's room, oldest first."""
        rows = await self._fetch_in(
            "SELECT r.relates_to_id, r.event_id FROM event_relations r"
            " JOIN events e ON e.event_id = r.event_id"
            " JOIN events p ON p.event_id = r.relates_to_id AND p.room_id = r.room_id"
            f" WHERE r.rel_type = 'm.reference' AND {_LIVE} AND r.relates_to_id IN ({{ids}})"
            " ORDER BY e.depth, e.stream_ordering", parent_ids)
        return [(r["relates_to_id"], r["event_id"]) for r in rows]

    async def threads(self, room_id: str, position: tuple[int, int], limit: int, *,
                      participant: str | None = None) -> list[tuple[str, int, int]]:
        """(root, latest depth, latest stream) of the room's threads whose latest event is at
        or before ``position``, most recently active first; only those ``participant`` started
        or replied to, if given. Roots that relate to another event are no thread roots."""
        args: list[Any] = [room_id, *position, limit]
        extra = ""
        if participant is not None:
            args.append(participant)
            extra = (
                " AND (p.sender = $5 OR EXISTS (SELECT 1 FROM event_relations r"
                " JOIN events e ON e.event_id = r.event_id WHERE r.relates_to_id = t.thread_id"
                f" AND r.rel_type = '{THREAD}' AND e.sender = $5 AND {_LIVE}))")
        rows = await self._db.fetch(
            "SELECT t.thread_id, t.latest_depth, t.latest_stream FROM threads t"
            " JOIN events p ON p.event_id = t.thread_id AND p.room_id = t.room_id"
            " WHERE t.room_id = $1 AND (t.latest_depth < $2 OR (t.latest_depth = $2"
            " AND t.latest_stream <= $3)) AND NOT EXISTS (SELECT 1 FROM event_relations r"
            f" WHERE r.event_id = t.thread_id AND {_LIVE}){extra}"
            " ORDER BY t.latest_depth DESC, t.latest_stream DESC LIMIT $4", *args)
        return [(r["thread_id"], int(r["latest_depth"]), int(r["latest_stream"]))
                for r in rows]
