-- Server-server API, "Soft failure": an event from another server that passed the auth rules
-- at its place in the DAG but not against the room's current state. It is kept (it takes part
-- in state resolution and is served over federation) but never shown to clients nor used as
-- a prev event by this server.
ALTER TABLE events ADD COLUMN soft_failed BOOLEAN NOT NULL DEFAULT FALSE;
