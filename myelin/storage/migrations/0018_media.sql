-- The media repository (client-server API, "Content repository").

-- One row per mxc:// URI: local uploads (origin = this server) and cached copies of other
-- servers' media. The bytes live in the blob store under their SHA-256, so identical files are
-- stored once; sha256 is NULL while a media ID reserved with /create waits for its upload.
CREATE TABLE media (
    origin          TEXT    NOT NULL,
    media_id        TEXT    NOT NULL,
    user_id         TEXT,              -- uploader; NULL for remote media
    content_type    TEXT,
    upload_name     TEXT,
    size            BIGINT,
    sha256          TEXT,
    created_ts      BIGINT  NOT NULL,
    uploaded_ts     BIGINT,            -- NULL while pending
    expires_ts      BIGINT,            -- a pending reservation lapses then
    last_access_ts  BIGINT  NOT NULL,
    authenticated   BOOLEAN NOT NULL,  -- stored while unauthenticated downloads were frozen
    PRIMARY KEY (origin, media_id)
);
CREATE INDEX media_by_user ON media (user_id, uploaded_ts);
CREATE INDEX media_by_sha256 ON media (sha256);
CREATE INDEX media_by_access ON media (origin, last_access_ts);

-- Thumbnails are blobs too; (width, height, method) is the size that was asked for or
-- configured, not necessarily the size of the image (which never exceeds the original).
CREATE TABLE media_thumbnails (
    origin        TEXT    NOT NULL,
    media_id      TEXT    NOT NULL,
    width         INTEGER NOT NULL,
    height        INTEGER NOT NULL,
    method        TEXT    NOT NULL,
    animated      BOOLEAN NOT NULL,
    content_type  TEXT    NOT NULL,
    out_width     INTEGER NOT NULL,
    out_height    INTEGER NOT NULL,
    size          BIGINT  NOT NULL,
    sha256        TEXT    NOT NULL,
    configured    BOOLEAN NOT NULL,  -- one of media.thumbnail_sizes (not counted in the cap)
    PRIMARY KEY (origin, media_id, width, height, method, animated)
);
CREATE INDEX media_thumbnails_by_sha256 ON media_thumbnails (sha256);

-- URL previews, one per URL, reused until expires_ts.
CREATE TABLE url_previews (
    url         TEXT   NOT NULL PRIMARY KEY,
    fetched_ts  BIGINT NOT NULL,
    expires_ts  BIGINT NOT NULL,
    og_json     TEXT   NOT NULL
);
