-- Units of each order counted as sold; a cancelled row with no prior sale is
-- a tombstone, so a late OrderCreated never counts a cancelled order.
CREATE TABLE sales (
    order_id   TEXT NOT NULL,
    product_id TEXT NOT NULL,
    quantity   INTEGER NOT NULL,
    cancelled  INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (order_id, product_id)
);

-- Events a consumer has applied, by event id.
CREATE TABLE inbox (
    consumer TEXT NOT NULL,
    event_id TEXT NOT NULL,
    PRIMARY KEY (consumer, event_id)
);
