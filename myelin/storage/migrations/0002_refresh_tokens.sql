-- Refresh tokens (client-server API, "Refreshing access tokens"), stored as SHA-256 like access
-- tokens. previous_sha256 is the token this one replaced: it stays valid until this token or
-- the access token issued with it is first used, so a client that lost the refresh response
-- can repeat the refresh.
CREATE TABLE refresh_tokens (
    token_sha256    TEXT   NOT NULL PRIMARY KEY,
    user_id         TEXT   NOT NULL,
    device_id       TEXT   NOT NULL,
    created_ts      BIGINT NOT NULL,
    previous_sha256 TEXT,
    FOREIGN KEY (user_id, device_id) REFERENCES devices (user_id, device_id) ON DELETE CASCADE
);

-- The refresh token issued together with an access token, if any.
ALTER TABLE access_tokens ADD COLUMN refresh_sha256 TEXT;
