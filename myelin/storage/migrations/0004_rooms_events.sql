-- Rooms, events and room state. Events are kept as the exact JSON that was signed or received
-- (hashes and signatures cover it); the columns beside it are what queries filter on.

CREATE TABLE rooms (
    room_id      TEXT    NOT NULL PRIMARY KEY,
    room_version TEXT    NOT NULL,
    creator      TEXT    NOT NULL,
    created_ts   BIGINT  NOT NULL,
    is_public    BOOLEAN NOT NULL DEFAULT FALSE
);

CREATE TABLE events (
    event_id         TEXT    NOT NULL PRIMARY KEY,
    room_id          TEXT    NOT NULL,
    -- Position in this server's event stream: /sync tokens and the notifier count in it.
    stream_ordering  BIGINT  NOT NULL UNIQUE,
    depth            BIGINT  NOT NULL,
    type             TEXT    NOT NULL,
    state_key        TEXT,
    sender           TEXT    NOT NULL,
    origin_server_ts BIGINT  NOT NULL,
    json             TEXT    NOT NULL,
    -- Outliers are known (e.g. as auth events) but not part of the room's timeline.
    outlier          BOOLEAN NOT NULL DEFAULT FALSE,
    rejected_reason  TEXT,
    -- The room state after this event (NULL for outliers and rejected events).
    state_group      BIGINT
);
CREATE INDEX events_by_room_stream ON events (room_id, stream_ordering);
CREATE INDEX events_by_room_depth ON events (room_id, depth, stream_ordering);

CREATE TABLE event_edges (
    event_id      TEXT NOT NULL,
    prev_event_id TEXT NOT NULL,
    PRIMARY KEY (event_id, prev_event_id)
);
CREATE INDEX event_edges_by_prev ON event_edges (prev_event_id);

CREATE TABLE event_auth (
    event_id      TEXT NOT NULL,
    auth_event_id TEXT NOT NULL,
    PRIMARY KEY (event_id, auth_event_id)
);

-- The room's DAG leaves: the prev_events of the next event this server creates.
CREATE TABLE forward_extremities (
    room_id  TEXT NOT NULL,
    event_id TEXT NOT NULL,
    PRIMARY KEY (room_id, event_id)
);

-- State snapshots, deduplicated: a group is either a full snapshot (prev_group NULL) or the
-- changes over prev_group; chain_length bounds how many deltas a read has to walk.
CREATE TABLE state_groups (
    group_id     BIGINT  NOT NULL PRIMARY KEY,
    room_id      TEXT    NOT NULL,
    prev_group   BIGINT,
    chain_length INTEGER NOT NULL
);
CREATE TABLE state_group_entries (
    group_id  BIGINT NOT NULL,
    type      TEXT   NOT NULL,
    state_key TEXT   NOT NULL,
    event_id  TEXT,  -- NULL in a delta: the key is no longer in the state
    PRIMARY KEY (group_id, type, state_key)
);

-- The room's current state, kept in step with forward extremities for fast lookups.
CREATE TABLE current_state (
    room_id   TEXT NOT NULL,
    type      TEXT NOT NULL,
    state_key TEXT NOT NULL,
    event_id  TEXT NOT NULL,
    PRIMARY KEY (room_id, type, state_key)
);

-- Current membership per (room, user), derived from current_state for queries by user.
CREATE TABLE room_memberships (
    room_id         TEXT   NOT NULL,
    user_id         TEXT   NOT NULL,
    membership      TEXT   NOT NULL,
    event_id        TEXT   NOT NULL,
    stream_ordering BIGINT NOT NULL,
    PRIMARY KEY (room_id, user_id)
);
CREATE INDEX room_memberships_by_user ON room_memberships (user_id, membership);

-- Client transaction IDs (client-server API, "Transaction identifiers"): scoped to a device
-- and an endpoint; the stored response is replayed for a retransmission.
CREATE TABLE client_transactions (
    user_id    TEXT   NOT NULL,
    device_id  TEXT   NOT NULL,
    endpoint   TEXT   NOT NULL,
    txn_id     TEXT   NOT NULL,
    response   TEXT   NOT NULL,
    created_ts BIGINT NOT NULL,
    PRIMARY KEY (user_id, device_id, endpoint, txn_id)
);
