"""Full-text search over room events (client-server API, "Server Side Search").

One index row per searchable event, keyed by the event's ``stream_ordering``:

* SQLite: the FTS5 table ``event_search`` (rowid = stream_ordering, one column ``value``,
  ``porter unicode61`` tokenizer), searched with ``MATCH`` and ranked with ``bm25``;
* PostgreSQL: ``event_search(stream_ordering, vector tsvector)`` with a GIN index, searched
  with ``@@`` and ranked with ``ts_rank_cd`` (the ``english`` configuration).

Rows are written in the event's own write batch (:func:`search_statements`) and deleted in the
batch of a redaction that applies; queries also skip anything in ``redactions``.

The user's search term never reaches either engine's query syntax. :func:`parse_search_term`
reduces it to words, "quoted phrases", ``-negations`` and ``or`` (the websearch syntax both
Synapse and PostgreSQL accept); the engine query is then built from that structure alone, with
each term on SQLite a double-quoted FTS5 string of letters and digits, and on PostgreSQL a bind
parameter of ``phraseto_tsquery``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from myelin.core.events import PDU
from myelin.storage.database import Database, Statement

if TYPE_CHECKING:
    from myelin.storage.persistence import PersistEvent

# Which event type each searchable key lives in.
KEY_TYPES = {"content.body": "m.room.message", "content.name": "m.room.name",
             "content.topic": "m.room.topic"}
MAX_TERMS = 16  # words and phrases kept from one search term; the rest is ignored
_MARK_START, _MARK_END = "\x02", "\x03"
_HEADLINE_OPTIONS = f'HighlightAll=true, StartSel="{_MARK_START}", StopSel="{_MARK_END}"'
_MARKED = re.compile(f"{_MARK_START}([^{_MARK_END}]*){_MARK_END}")
_WORD = re.compile(r"[^\W_]+")  # letters and digits: what both engines' tokenizers keep
_PIECE = re.compile(r'(-?)"([^"]*)"?|(-?)([^\s"]+)')


def searchable_text(pdu: PDU) -> str | None:
    """The text of ``pdu`` that search covers, or None if the event is not searchable."""
    content = pdu.content
    if pdu.type == "m.room.message":
        values = [content.get("body")]
    elif pdu.type == "m.room.name":
        values = [content.get("name")]
    elif pdu.type == "m.room.topic":
        values = [content.get("topic"), _plain_topic(content.get("m.topic"))]
    else:
        return None
    texts = list(dict.fromkeys(v.replace("\x00", " ") for v in values
                               if isinstance(v, str) and v.strip()))
    return "\n".join(texts) if texts else None


def _plain_topic(block: Any) -> str | None:
    texts = block.get("m.text") if isinstance(block, dict) else None
    for text in texts if isinstance(texts, list) else ():
        if isinstance(text, dict) and text.get("mimetype", "text/plain") == "text/plain":
            body = text.get("body")
            return body if isinstance(body, str) else None
    return None


def search_statements(engine: str, item: PersistEvent) -> list[Statement]:
    """The index writes for one event, to run in that event's write batch."""
    pdu = item.pdu
    out: list[Statement] = []
    if item.applies_redaction and pdu.redacts is not None:
        key = "rowid" if engine == "sqlite" else "stream_ordering"
        out.append(Statement(
            f"DELETE FROM event_search WHERE {key} ="
            " (SELECT stream_ordering FROM events WHERE event_id = $1)", (pdu.redacts,)))
    text = None if not item.in_timeline else searchable_text(pdu)
    if text is not None:
        out.append(Statement(
            "INSERT INTO event_search (rowid, value) VALUES ($1, $2)" if engine == "sqlite"
            else "INSERT INTO event_search (stream_ordering, vector)"
                 " VALUES ($1, to_tsvector('english', $2))",
            (item.stream_ordering, text)))
    return out


@dataclass(frozen=True)
class SearchQuery:
    """A parsed search term: any one of ``groups`` must match. Each group is the terms that
    must all appear and the terms that must not; a term is a phrase of one or more words."""

    groups: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...]

    @property
    def words(self) -> list[str]:
        """The words searched for (negated ones left out)."""
        return list(dict.fromkeys(w for must, _ in self.groups for t in must for w in t.split()))


def parse_search_term(term: str) -> SearchQuery:
    groups: list[tuple[list[str], list[str]]] = [([], [])]
    count = 0
    for match in _PIECE.finditer(term):
        negated, text = bool(match[1] or match[3]), match[2] if match[2] is not None else match[4]
        quoted = match[2] is not None
        if not quoted and not negated and text.lower() == "or":
            groups.append(([], []))
            continue
        if not quoted and not negated and text.lower() == "and":
            continue  # "and" is implicit
        words = _WORD.findall(text)
        if words and count < MAX_TERMS:
            count += 1
            groups[-1][1 if negated else 0].append(" ".join(words))
    # A group of only negations cannot use either index (and FTS5 cannot express it).
    return SearchQuery(tuple((tuple(must), tuple(must_not)) for must, must_not in groups
                             if must))


def _fts5_match(query: SearchQuery) -> str:
    def phrase(t: str) -> str:
        return '"' + t.replace('"', '""') + '"'  # t is letters, digits and spaces already

    return " OR ".join(
        "((" + " AND ".join(phrase(t) for t in must) + ")"
        + "".join(f" NOT {phrase(t)}" for t in must_not) + ")"
        for must, must_not in query.groups)


def _tsquery(query: SearchQuery, args: list[Any]) -> str:
    def phrase(t: str) -> str:
        args.append(t)
        return f"phraseto_tsquery('english', ${len(args)})"

    return " || ".join(
        "((" + " && ".join(phrase(t) for t in must) + ")"
        + "".join(f" && !!{phrase(t)}" for t in must_not) + ")"
        for must, must_not in query.groups)


@dataclass(frozen=True)
class SearchScope:
    """Which indexed events a search looks at, beyond the text: always only rooms
    ``user_id`` is joined to, and only events that were not redacted."""

    user_id: str
    types: Sequence[str]
    rooms: Sequence[str] | None = None
    not_rooms: Sequence[str] = ()
    senders: Sequence[str] | None = None
    not_senders: Sequence[str] = ()


@dataclass(frozen=True)
class Hit:
    stream_ordering: int
    rank: float
    event_id: str
    room_id: str
    sender: str


@dataclass
class _Sql:
    engine: str
    args: list[Any] = field(default_factory=list)

    def arg(self, value: Any) -> str:
        self.args.append(value)
        return f"${len(self.args)}"

    def in_list(self, column: str, values: Sequence[Any], negate: bool = False) -> str:
        if self.engine == "sqlite":
            ref = self.arg(orjson.dumps(list(values)).decode())
            return f"{column} {'NOT IN' if negate else 'IN'} (SELECT value FROM json_each({ref}))"
        ref = self.arg(list(values))
        return f"{column} <> ALL({ref}::text[])" if negate else f"{column} = ANY({ref}::text[])"


class SearchStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def _matches(self, sql: _Sql, query: SearchQuery, scope: SearchScope) -> str:
        """FROM and WHERE of the matching events; selects ``s.so`` and ``s.score``."""
        if self.engine == "sqlite":
            source = ("(SELECT rowid AS so, -bm25(event_search) AS score FROM event_search"
                      f" WHERE event_search MATCH {sql.arg(_fts5_match(query))}) AS s"
                      " CROSS JOIN events AS e ON e.stream_ordering = s.so")
        else:
            tsquery = _tsquery(query, sql.args)
            source = (f"(SELECT stream_ordering AS so, ts_rank_cd(vector, {tsquery})::float8"
                      f" AS score FROM event_search WHERE vector @@ ({tsquery})"
                      f" AND querytree({tsquery}) NOT IN ('', 'T')) AS s"
                      " JOIN events AS e ON e.stream_ordering = s.so")
        # SQLite: CROSS JOIN keeps the full-text match the outer loop, so "recent" walks the
        # FTS5 index newest first and stops at the LIMIT (PostgreSQL's planner chooses itself).
        join = "CROSS JOIN" if self.engine == "sqlite" else "JOIN"
        source += (f" {join} room_memberships AS m ON m.room_id = e.room_id"
                   f" AND m.user_id = {sql.arg(scope.user_id)} AND m.membership = 'join'")
        where = [sql.in_list("e.type", scope.types),
                  "NOT EXISTS (SELECT 1 FROM redactions AS x WHERE x.redacts = e.event_id)"]
        if scope.rooms is not None:
            where.append(sql.in_list("e.room_id", scope.rooms))
        if scope.not_rooms:
            where.append(sql.in_list("e.room_id", scope.not_rooms, negate=True))
        if scope.senders is not None:
            where.append(sql.in_list("e.sender", scope.senders))
        if scope.not_senders:
            where.append(sql.in_list("e.sender", scope.not_senders, negate=True))
        return f"FROM {source} WHERE {' AND '.join(where)}"

    @property
    def engine(self) -> str:
        return self._db.engine

    async def search(self, query: SearchQuery, scope: SearchScope, *, by_rank: bool,
                     after: tuple[float, int] | None, limit: int) -> list[Hit]:
        """Matches in order (best or newest first), starting after the cursor ``after``
        (rank, stream_ordering) of the last hit of an earlier call."""
        if not query.groups or not scope.types:
            return []
        sql = _Sql(self.engine)
        body = self._matches(sql, query, scope)
        if after is not None and by_rank:
            rank, stream = sql.arg(after[0]), sql.arg(after[1])
            body += f" AND (s.score < {rank} OR (s.score = {rank} AND s.so < {stream}))"
        elif after is not None:
            body += f" AND s.so < {sql.arg(after[1])}"
        order = "s.score DESC, s.so DESC" if by_rank else "s.so DESC"
        rows = await self._db.fetch(
            f"SELECT s.so, s.score, e.event_id, e.room_id, e.sender {body}"
            f" ORDER BY {order} LIMIT {sql.arg(limit)}", *sql.args)
        return [Hit(int(r["so"]), float(r["score"]), r["event_id"], r["room_id"], r["sender"])
                for r in rows]

    async def count(self, query: SearchQuery, scope: SearchScope) -> int:
        if not query.groups or not scope.types:
            return 0
        sql = _Sql(self.engine)
        body = self._matches(sql, query, scope)
        return int(await self._db.fetchval(f"SELECT COUNT(*) {body}", *sql.args) or 0)

    async def matched_words(self, query: SearchQuery,
                            docs: Sequence[tuple[int, str]]) -> set[str]:
        """The words of the documents ``(stream_ordering, text)`` that matched ``query``, as
        the engine's stemming saw them (e.g. "running" for a search for "run"), lower-cased."""
        if not query.groups or not docs:
            return set()
        sql = _Sql(self.engine)
        if self.engine == "sqlite":
            rows = await self._db.fetch(
                "SELECT highlight(event_search, 0, char(2), char(3)) AS marked"
                f" FROM event_search WHERE event_search MATCH {sql.arg(_fts5_match(query))}"
                f" AND {sql.in_list('rowid', [so for so, _ in docs])}", *sql.args)
        else:
            tsquery = _tsquery(query, sql.args)
            texts = sql.arg([re.sub("[\x00\x02\x03]", " ", text) for _, text in docs])
            rows = await self._db.fetch(
                f"SELECT ts_headline('english', t, {tsquery}, {sql.arg(_HEADLINE_OPTIONS)})"
                f" AS marked FROM unnest({texts}::text[]) AS t", *sql.args)
        return {w.lower() for r in rows for w in _MARKED.findall(r["marked"] or "")}
