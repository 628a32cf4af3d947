-- End-to-end encryption keys (client-server API, module "End-to-End Encryption").

-- Device identity keys as uploaded (signatures other than the device's own live in
-- e2e_signatures and are merged in when read).
CREATE TABLE e2e_device_keys (
    user_id   TEXT NOT NULL,
    device_id TEXT NOT NULL,
    key_json  TEXT NOT NULL,
    PRIMARY KEY (user_id, device_id)
);

-- One-time keys; a claim deletes the row.
CREATE TABLE e2e_one_time_keys (
    user_id   TEXT NOT NULL,
    device_id TEXT NOT NULL,
    algorithm TEXT NOT NULL,
    key_id    TEXT NOT NULL,
    key_json  TEXT NOT NULL,
    PRIMARY KEY (user_id, device_id, algorithm, key_id)
);

-- At most one fallback key per device and algorithm; ``used`` once it was claimed.
CREATE TABLE e2e_fallback_keys (
    user_id   TEXT    NOT NULL,
    device_id TEXT    NOT NULL,
    algorithm TEXT    NOT NULL,
    key_id    TEXT    NOT NULL,
    key_json  TEXT    NOT NULL,
    used      BOOLEAN NOT NULL,
    PRIMARY KEY (user_id, device_id, algorithm)
);

-- Cross-signing keys: key_type is 'master', 'self_signing' or 'user_signing'.
CREATE TABLE e2e_cross_signing_keys (
    user_id  TEXT NOT NULL,
    key_type TEXT NOT NULL,
    key_json TEXT NOT NULL,
    PRIMARY KEY (user_id, key_type)
);

-- Signatures uploaded through /keys/signatures/upload. target_key_id is a device ID or the
-- public key of a cross-signing key; signer_key_id is "ed25519:<device ID or public key>".
CREATE TABLE e2e_signatures (
    target_user_id TEXT NOT NULL,
    target_key_id  TEXT NOT NULL,
    signer_user_id TEXT NOT NULL,
    signer_key_id  TEXT NOT NULL,
    signature      TEXT NOT NULL,
    PRIMARY KEY (target_user_id, target_key_id, signer_user_id, signer_key_id)
);

-- Device list changes, as positions of the shared event stream: the latest change of a user's
-- device or cross-signing keys (seen by everyone sharing a room with them) ...
CREATE TABLE device_list_changes (
    user_id   TEXT   PRIMARY KEY,
    stream_id BIGINT NOT NULL
);
CREATE INDEX device_list_changes_by_stream ON device_list_changes (stream_id);

-- ... and changes only one user should hear about (their user-signing key signed someone).
CREATE TABLE device_list_private_changes (
    observer_id TEXT   NOT NULL,
    user_id     TEXT   NOT NULL,
    stream_id   BIGINT NOT NULL,
    PRIMARY KEY (observer_id, user_id)
);
