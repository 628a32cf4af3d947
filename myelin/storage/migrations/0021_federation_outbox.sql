-- Server-server API, "Transactions": what this server still has to push to each other server.
-- One row per queued PDU or EDU per destination, kept until the destination acknowledged the
-- transaction carrying it (HTTP 200), so a restart or an unreachable peer loses nothing.
-- position orders a destination's queue; the store hands positions out from a counter that
-- starts above the largest one stored (one writing process), so no engine-specific
-- auto-increment is needed, and a PDU sent to many servers takes one position for all of them.
-- edu_key (EDUs only, optional) names what a newer EDU of the same type supersedes, e.g. a
-- typing notification per room and user: at most one such row is queued per destination.
CREATE TABLE federation_outbox (
    destination TEXT   NOT NULL,
    position    BIGINT NOT NULL,
    kind        TEXT   NOT NULL CHECK (kind IN ('pdu', 'edu')),
    edu_type    TEXT,
    edu_key     TEXT,
    body        TEXT   NOT NULL,
    queued_ts   BIGINT NOT NULL,
    PRIMARY KEY (destination, position)
);
CREATE INDEX federation_outbox_by_kind ON federation_outbox (destination, kind, position);
CREATE UNIQUE INDEX federation_outbox_edu_key
    ON federation_outbox (destination, edu_type, edu_key) WHERE edu_key IS NOT NULL;

-- Retry state per destination, so a restart keeps honouring a back-off instead of hammering
-- a server that was down. retry_at_ts / last_success_ts are wall-clock milliseconds.
CREATE TABLE federation_destinations (
    destination     TEXT   NOT NULL PRIMARY KEY,
    failures        BIGINT NOT NULL DEFAULT 0,
    retry_at_ts     BIGINT,
    last_success_ts BIGINT
);
