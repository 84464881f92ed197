-- The outbox holds only what is still to be published: the relay deletes a
-- row once the bus has confirmed its event, so no history of sent rows grows.
DELETE FROM outbox WHERE sent_at IS NOT NULL;
DROP INDEX outbox_unsent;
ALTER TABLE outbox DROP COLUMN sent_at;
