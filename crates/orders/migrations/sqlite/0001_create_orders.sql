CREATE TABLE orders (
    id              BLOB PRIMARY KEY,
    user_id         BLOB NOT NULL,
    status          TEXT NOT NULL,
    total_minor     INTEGER NOT NULL,
    idempotency_key TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);

CREATE UNIQUE INDEX orders_idempotency ON orders (user_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX orders_user ON orders (user_id, id);
CREATE INDEX orders_status ON orders (status, id);

CREATE TABLE order_items (
    order_id         BLOB NOT NULL REFERENCES orders (id),
    position         INTEGER NOT NULL,
    product_id       TEXT NOT NULL,
    product_name     TEXT NOT NULL,
    quantity         INTEGER NOT NULL,
    unit_price_minor INTEGER NOT NULL,
    PRIMARY KEY (order_id, position)
);

CREATE TABLE outbox (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id    BLOB NOT NULL UNIQUE,
    kind        TEXT NOT NULL,
    payload     BLOB NOT NULL,
    traceparent TEXT,
    created_at  TEXT NOT NULL,
    sent_at     TEXT
);

CREATE INDEX outbox_unsent ON outbox (seq) WHERE sent_at IS NULL;
