-- The currency (ISO 4217) of every amount of an order. Orders written
-- before this were priced in the platform's only currency then, US dollars.
ALTER TABLE orders ADD COLUMN currency TEXT NOT NULL DEFAULT 'USD';
