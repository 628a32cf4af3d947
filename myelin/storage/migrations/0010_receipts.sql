-- Read receipts (client-server API, "Receipts"): the latest one per room, type, user and
-- thread ('' for unthreaded). stream_id is a position in the shared event stream.
CREATE TABLE receipts (
    room_id      TEXT   NOT NULL,
    receipt_type TEXT   NOT NULL,
    user_id      TEXT   NOT NULL,
    thread_id    TEXT   NOT NULL,
    event_id     TEXT   NOT NULL,
    ts           BIGINT NOT NULL,
    stream_id    BIGINT NOT NULL,
    PRIMARY KEY (room_id, receipt_type, user_id, thread_id)
);
CREATE INDEX receipts_by_stream ON receipts (stream_id);
