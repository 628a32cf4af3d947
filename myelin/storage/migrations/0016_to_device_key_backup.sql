-- Send-to-Device messaging: messages waiting for one local device, deleted once the device's
-- /sync proves it received them. stream_id is a position in the shared durable stream (one
-- per send request; a device gets at most one message per request).
CREATE TABLE to_device_messages (
    user_id   TEXT   NOT NULL,
    device_id TEXT   NOT NULL,
    stream_id BIGINT NOT NULL,
    sender    TEXT   NOT NULL,
    type      TEXT   NOT NULL,
    content   TEXT   NOT NULL,
    PRIMARY KEY (user_id, device_id, stream_id)
);

-- The highest stream position a to-device send ever took. Delivered messages are deleted, so
-- without it a restart could hand out a position again that a client's sync token already
-- covers (and the new message would be acknowledged unseen). One row, only ever raised.
CREATE TABLE to_device_stream (
    id        INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    stream_id BIGINT  NOT NULL
);
INSERT INTO to_device_stream (id, stream_id) VALUES (1, 0);

-- Server-side key backups ("End-to-end encryption", "Server-side key backups"). Versions are
-- numbered per user from 1; a deleted version keeps its row (deleted) so its number is never
-- reused and deleting it again succeeds. etag counts changes to the version's keys.
CREATE TABLE room_key_versions (
    user_id   TEXT    NOT NULL,
    version   BIGINT  NOT NULL,
    algorithm TEXT    NOT NULL,
    auth_data TEXT    NOT NULL,
    etag      BIGINT  NOT NULL DEFAULT 0,
    deleted   BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (user_id, version)
);

CREATE TABLE room_keys (
    user_id             TEXT    NOT NULL,
    version             BIGINT  NOT NULL,
    room_id             TEXT    NOT NULL,
    session_id          TEXT    NOT NULL,
    first_message_index BIGINT  NOT NULL,
    forwarded_count     BIGINT  NOT NULL,
    is_verified         BOOLEAN NOT NULL,
    session_data        TEXT    NOT NULL,
    PRIMARY KEY (user_id, version, room_id, session_id)
);
