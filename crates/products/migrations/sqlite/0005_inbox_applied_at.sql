-- When each event was applied (Unix milliseconds), so that the sweep can
-- forget the events applied long ago: every effect is idempotent per order
-- for good, the inbox only spares repeating it. Rows from before this
-- column count from now.
ALTER TABLE inbox ADD COLUMN applied_at_ms INTEGER NOT NULL DEFAULT 0;
UPDATE inbox SET applied_at_ms = CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER);
CREATE INDEX inbox_applied_at ON inbox (applied_at_ms);
