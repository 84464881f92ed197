-- A hold ends at expires_at_ms (Unix milliseconds) unless an order confirms
-- its reservation (confirmed = 1). Holds taken before this column existed
-- have no end: they count as expired, so the next sweep asks the orders
-- service about them and keeps those an order holds.
ALTER TABLE reservations ADD COLUMN expires_at_ms INTEGER;
ALTER TABLE reservations ADD COLUMN confirmed INTEGER NOT NULL DEFAULT 0;
CREATE INDEX reservations_unconfirmed ON reservations (expires_at_ms) WHERE state = 'reserved' AND confirmed = 0;
