-- Items (by sku) and orders (by order id) with their attributes: what the decision engine's
-- item and order tags read (journeys catalog load).
CREATE TABLE catalog (
    kind       text        NOT NULL CHECK (kind IN ('item', 'order')),
    key        text        NOT NULL,
    attrs      jsonb       NOT NULL DEFAULT '{}'::jsonb,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, key)
);
