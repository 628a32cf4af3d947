-- Full-text search over room events (client-server API, "Server Side Search"): one row per
-- searchable timeline event (m.room.message body, m.room.name name, m.room.topic topic), keyed
-- by the event's stream_ordering. Rows go when a redaction of the event applies.
CREATE TABLE event_search (
    stream_ordering BIGINT   NOT NULL PRIMARY KEY,
    vector          TSVECTOR NOT NULL
);
CREATE INDEX event_search_vector ON event_search USING GIN (vector);

-- Index the events stored before this migration. Events whose JSON holds an escaped NUL are
-- skipped: PostgreSQL text cannot hold one, so ->> would fail on them.
INSERT INTO event_search (stream_ordering, vector)
SELECT stream_ordering, to_tsvector('english', value) FROM (
    SELECT e.stream_ordering, e.json::json -> 'content' -> (CASE e.type
               WHEN 'm.room.message' THEN 'body'
               WHEN 'm.room.name' THEN 'name'
               ELSE 'topic' END) AS field
    FROM events AS e
    WHERE e.type IN ('m.room.message', 'm.room.name', 'm.room.topic')
      AND NOT e.outlier AND e.rejected_reason IS NULL
      AND strpos(e.json, '\u0000') = 0
      AND NOT EXISTS (SELECT 1 FROM redactions AS r WHERE r.redacts = e.event_id)
) AS found
CROSS JOIN LATERAL (SELECT found.field #>> '{}' AS value) AS v
WHERE json_typeof(found.field) = 'string' AND trim(value) <> '';
