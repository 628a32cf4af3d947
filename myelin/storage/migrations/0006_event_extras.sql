-- Which device sent a local event, under which transaction ID: served back to that device as
-- unsigned.transaction_id, so clients can match the event to their local echo.
ALTER TABLE events ADD COLUMN sender_device TEXT;
ALTER TABLE events ADD COLUMN txn_id TEXT;

-- Redactions that apply ("Handling redactions"): the redacted event is served pruned, with
-- unsigned.redacted_because.
CREATE TABLE redactions (
    redacts  TEXT NOT NULL,
    event_id TEXT NOT NULL,
    PRIMARY KEY (redacts, event_id)
);
