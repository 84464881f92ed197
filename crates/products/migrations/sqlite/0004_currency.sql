-- Every price gets its currency (ISO 4217). Products and reservations
-- written before this were priced in the platform's only currency then,
-- US dollars.
ALTER TABLE products ADD COLUMN currency TEXT NOT NULL DEFAULT 'USD';
ALTER TABLE reservation_items ADD COLUMN currency TEXT NOT NULL DEFAULT 'USD';
