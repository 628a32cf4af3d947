-- Pushers (client-server API, "Push Notifications"): where a user's notifications are sent,
-- one per (user, app_id, pushkey). data is the client's PusherData as JSON text, url included.
-- pushkey_ts is when the pusher was last set (ms); last_stream_ordering is the newest
-- notification it has dealt with (delivered or given up on); device_id is the device that set
-- it.
CREATE TABLE pushers (
    user_id              TEXT   NOT NULL,
    app_id               TEXT   NOT NULL,
    pushkey              TEXT   NOT NULL,
    kind                 TEXT   NOT NULL,
    app_display_name     TEXT   NOT NULL,
    device_display_name  TEXT   NOT NULL,
    profile_tag          TEXT,
    lang                 TEXT   NOT NULL,
    data                 TEXT   NOT NULL,
    device_id            TEXT,
    pushkey_ts           BIGINT NOT NULL,
    last_stream_ordering BIGINT NOT NULL,
    PRIMARY KEY (user_id, app_id, pushkey)
);
CREATE INDEX pushers_by_key ON pushers (app_id, pushkey);

-- Events a local user was notified about by their push rules (GET /notifications, the unread
-- badge sent to push gateways): actions is the JSON array of the matching rule's actions.
-- stream_ordering is the event's position in the event stream. Old rows are pruned.
CREATE TABLE notifications (
    user_id         TEXT    NOT NULL,
    stream_ordering BIGINT  NOT NULL,
    room_id         TEXT    NOT NULL,
    event_id        TEXT    NOT NULL,
    actions         TEXT    NOT NULL,
    highlight       BOOLEAN NOT NULL,
    ts              BIGINT  NOT NULL,
    PRIMARY KEY (user_id, stream_ordering)
);
CREATE INDEX notifications_by_room ON notifications (user_id, room_id, stream_ordering);
CREATE INDEX notifications_by_ts ON notifications (ts);
