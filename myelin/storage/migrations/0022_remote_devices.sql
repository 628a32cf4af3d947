-- End-to-end encryption over federation (server-server API, "Device Management",
-- "End-to-End Encryption", "Send-to-device messaging").

-- Device lists of remote users this server tracks because they share a room with a local
-- user. stream_id is the origin's stream_id our copy corresponds to (from /user/devices or the
-- last m.device_list_update applied); stale: an update was lost, resync before answering.
-- A remote user's cross-signing keys live in e2e_cross_signing_keys beside local users' ones,
-- so signing a remote master key is checked the same way as a local one.
CREATE TABLE e2e_remote_device_lists (
    user_id   TEXT    NOT NULL PRIMARY KEY,
    stream_id BIGINT  NOT NULL,
    stale     BOOLEAN NOT NULL
);

-- The cached devices; key_json is NULL for a device without identity keys.
CREATE TABLE e2e_remote_devices (
    user_id      TEXT NOT NULL,
    device_id    TEXT NOT NULL,
    key_json     TEXT,
    display_name TEXT,
    PRIMARY KEY (user_id, device_id)
);

-- The last m.device_list_update stream_id sent for each local user: the next one is one more,
-- its prev_id is this one, and GET /user/devices reports it as the list's stream_id.
CREATE TABLE e2e_device_list_outbound (
    user_id   TEXT   NOT NULL PRIMARY KEY,
    stream_id BIGINT NOT NULL
);

-- m.direct_to_device EDUs already delivered, by origin and message_id, so a retransmission
-- (also one after a restart) is not delivered twice. Old rows are pruned.
CREATE TABLE to_device_federation_inbox (
    origin      TEXT   NOT NULL,
    message_id  TEXT   NOT NULL,
    received_ts BIGINT NOT NULL,
    PRIMARY KEY (origin, message_id)
);
CREATE INDEX to_device_federation_inbox_by_ts ON to_device_federation_inbox (received_ts);
