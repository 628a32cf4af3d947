-- The thread an event notified in (the m.thread relation's root event ID; NULL for the main
-- timeline), so /sync reads unread counts, threaded or not, from the notifications recorded at
-- evaluation instead of evaluating every unread event again per sync.
ALTER TABLE notifications ADD COLUMN thread_id TEXT;
