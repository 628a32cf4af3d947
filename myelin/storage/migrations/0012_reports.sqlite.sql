-- Reports of events, rooms and users to the server admins (client-server API, "Reporting
-- content"). kind is 'event', 'room' or 'user'; content is the request body as received.
CREATE TABLE reports (
    report_id   INTEGER PRIMARY KEY AUTOINCREMENT,
    kind        TEXT    NOT NULL,
    reporter    TEXT    NOT NULL,
    room_id     TEXT,
    event_id    TEXT,
    target_user TEXT,
    reason      TEXT,
    score       BIGINT,
    content     TEXT    NOT NULL,
    received_ts BIGINT  NOT NULL
);
CREATE INDEX reports_by_ts ON reports (received_ts);
