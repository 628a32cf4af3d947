-- Outgoing federation traffic (server-server API, "Transactions"): what is still to be sent to
-- each destination, in order, and each destination's retry state. Rows are deleted once the
-- destination accepted the transaction carrying them, so a restart resumes where it stopped.
CREATE TABLE federation_outbox (
    position    INTEGER PRIMARY KEY AUTOINCREMENT,
    destination TEXT    NOT NULL,
    kind        TEXT    NOT NULL,  -- 'pdu' or 'edu'
    edu_key     TEXT,              -- a newer EDU with the same key replaces a queued one
    json        TEXT    NOT NULL
);
CREATE INDEX federation_outbox_by_destination ON federation_outbox (destination, position);
CREATE UNIQUE INDEX federation_outbox_edu_key ON federation_outbox (destination, edu_key);

CREATE TABLE federation_destinations (
    destination TEXT    NOT NULL PRIMARY KEY,
    failures    INTEGER NOT NULL,
    retry_at    BIGINT  NOT NULL,  -- ms; 0 when not backing off
    txn_counter BIGINT  NOT NULL   -- transaction IDs are never reused for a destination
);
