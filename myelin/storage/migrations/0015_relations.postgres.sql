-- Event relationships (client-server API, "Forming relationships between events"): one row per
-- timeline event whose content has an m.relates_to with a string rel_type and event_id. The
-- parent may be unknown here; a redacted child no longer relates (queries skip rows whose
-- event is in redactions).
CREATE TABLE event_relations (
    event_id        TEXT NOT NULL PRIMARY KEY,
    room_id         TEXT NOT NULL,
    relates_to_id   TEXT NOT NULL,
    rel_type        TEXT NOT NULL,
    aggregation_key TEXT  -- m.annotation's "key"
);
CREATE INDEX event_relations_by_parent ON event_relations (relates_to_id, rel_type);

-- Threads ("Threading"): one row per thread root, with its latest (non-redacted) thread event,
-- so GET /threads lists roots by latest activity without scanning every thread event.
CREATE TABLE threads (
    room_id         TEXT   NOT NULL,
    thread_id       TEXT   NOT NULL,  -- the thread root's event ID
    latest_event_id TEXT   NOT NULL,
    latest_depth    BIGINT NOT NULL,
    latest_stream   BIGINT NOT NULL,
    PRIMARY KEY (room_id, thread_id)
);
CREATE INDEX threads_by_activity ON threads (room_id, latest_depth, latest_stream);
CREATE INDEX threads_by_latest ON threads (latest_event_id);

-- Events persisted before this migration: their relations, read from the stored JSON. Events
-- with a \u0000 escape are skipped: PostgreSQL cannot turn one into text.
INSERT INTO event_relations (event_id, room_id, relates_to_id, rel_type, aggregation_key)
SELECT event_id, room_id, rel ->> 'event_id', rel ->> 'rel_type',
       CASE WHEN json_typeof(rel -> 'key') = 'string' THEN rel ->> 'key' END
FROM (
    SELECT event_id, room_id, json::json -> 'content' -> 'm.relates_to' AS rel
    FROM events
    WHERE NOT outlier AND rejected_reason IS NULL AND json LIKE '%m.relates_to%'
      AND strpos(json, '\u0000') = 0
) candidates
WHERE json_typeof(rel) = 'object' AND json_typeof(rel -> 'rel_type') = 'string'
  AND json_typeof(rel -> 'event_id') = 'string';

-- Threads of the backfilled relations: each root with its latest live thread event.
INSERT INTO threads (room_id, thread_id, latest_event_id, latest_depth, latest_stream)
SELECT r.room_id, r.relates_to_id, e.event_id, e.depth, e.stream_ordering
FROM event_relations r JOIN events e ON e.event_id = r.event_id
WHERE r.rel_type = 'm.thread'
  AND NOT EXISTS (SELECT 1 FROM redactions x WHERE x.redacts = r.event_id)
  AND NOT EXISTS (
    SELECT 1 FROM event_relations r2 JOIN events e2 ON e2.event_id = r2.event_id
    WHERE r2.relates_to_id = r.relates_to_id AND r2.room_id = r.room_id
      AND r2.rel_type = 'm.thread'
      AND NOT EXISTS (SELECT 1 FROM redactions x WHERE x.redacts = r2.event_id)
      AND (e2.depth > e.depth OR (e2.depth = e.depth AND e2.stream_ordering > e.stream_ordering)));
