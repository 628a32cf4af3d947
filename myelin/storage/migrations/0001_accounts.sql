-- Server-wide facts that must survive restarts (e.g. which signing key this server uses).
CREATE TABLE server_meta (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- Local user accounts. password_hash is a bcrypt hash (Synapse-compatible) or NULL for no password.
CREATE TABLE users (
    user_id       TEXT PRIMARY KEY,
    password_hash TEXT,
    is_admin      BOOLEAN NOT NULL DEFAULT FALSE,
    is_guest      BOOLEAN NOT NULL DEFAULT FALSE,
    deactivated   BOOLEAN NOT NULL DEFAULT FALSE,
    created_ts    BIGINT  NOT NULL
);

CREATE TABLE devices (
    user_id      TEXT   NOT NULL REFERENCES users (user_id),
    device_id    TEXT   NOT NULL,
    display_name TEXT,
    created_ts   BIGINT NOT NULL,
    last_seen_ts BIGINT,
    last_seen_ip TEXT,
    PRIMARY KEY (user_id, device_id)
);

-- Access tokens are stored only as their SHA-256 (hex): a database leak does not leak sessions.
CREATE TABLE access_tokens (
    token_sha256 TEXT   PRIMARY KEY,
    user_id      TEXT   NOT NULL,
    device_id    TEXT   NOT NULL,
    created_ts   BIGINT NOT NULL,
    expires_ts   BIGINT,
    FOREIGN KEY (user_id, device_id) REFERENCES devices (user_id, device_id) ON DELETE CASCADE
);
CREATE INDEX access_tokens_by_device ON access_tokens (user_id, device_id);
