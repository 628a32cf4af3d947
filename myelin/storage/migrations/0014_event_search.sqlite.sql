-- Full-text search over room events (client-server API, "Server Side Search"): one row per
-- searchable timeline event (m.room.message body, m.room.name name, m.room.topic topic), with
-- rowid = the event's stream_ordering. Rows go when a redaction of the event applies.
CREATE VIRTUAL TABLE event_search USING fts5(
    value,
    tokenize = 'porter unicode61 remove_diacritics 2'
);

-- Index the events stored before this migration.
INSERT INTO event_search (rowid, value)
SELECT stream_ordering, value FROM (
    SELECT e.stream_ordering, json_extract(e.json, CASE e.type
               WHEN 'm.room.message' THEN '$.content.body'
               WHEN 'm.room.name' THEN '$.content.name'
               ELSE '$.content.topic' END) AS value
    FROM events AS e
    WHERE e.type IN ('m.room.message', 'm.room.name', 'm.room.topic')
      AND NOT e.outlier AND e.rejected_reason IS NULL
      AND NOT EXISTS (SELECT 1 FROM redactions AS r WHERE r.redacts = e.event_id)
)
WHERE typeof(value) = 'text' AND trim(value) <> '';
