-- The room directory's alias -> room mapping for aliases on this server.
CREATE TABLE room_aliases (
    room_alias TEXT   NOT NULL PRIMARY KEY,
    room_id    TEXT   NOT NULL,
    creator    TEXT   NOT NULL,
    created_ts BIGINT NOT NULL
);
CREATE INDEX room_aliases_by_room ON room_aliases (room_id);
