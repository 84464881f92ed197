CREATE TABLE products (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    description TEXT NOT NULL,
    price_minor INTEGER NOT NULL CHECK (price_minor >= 0),
    stock       INTEGER NOT NULL CHECK (stock >= 0),
    units_sold  INTEGER NOT NULL DEFAULT 0,
    search_text TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);

CREATE INDEX products_price ON products (price_minor);

-- state: reserved | released (a released row with no items is a tombstone:
-- released before it was ever reserved).
CREATE TABLE reservations (
    id         TEXT PRIMARY KEY,
    state      TEXT NOT NULL CHECK (state IN ('reserved', 'released')),
    created_at TEXT NOT NULL
);

CREATE TABLE reservation_items (
    reservation_id   TEXT NOT NULL REFERENCES reservations (id),
    product_id       TEXT NOT NULL,
    product_name     TEXT NOT NULL,
    quantity         INTEGER NOT NULL CHECK (quantity > 0),
    unit_price_minor INTEGER NOT NULL,
    PRIMARY KEY (reservation_id, product_id)
);
