-- Client account data (client-server API, "Client Config"), global (room_id '') and per room.
-- stream_id is a position in the same stream as events, so /sync tokens cover both.
CREATE TABLE account_data (
    user_id   TEXT   NOT NULL,
    room_id   TEXT   NOT NULL,
    type      TEXT   NOT NULL,
    content   TEXT   NOT NULL,
    stream_id BIGINT NOT NULL,
    PRIMARY KEY (user_id, room_id, type)
);
CREATE INDEX account_data_by_stream ON account_data (user_id, stream_id);
