-- POST /rooms/{id}/forget: the user no longer sees the room (sync, history) until a new
-- membership event of theirs in it.
ALTER TABLE room_memberships ADD COLUMN forgotten BOOLEAN NOT NULL DEFAULT FALSE;
