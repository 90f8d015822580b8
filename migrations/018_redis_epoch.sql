-- The epoch of the Redis this database works with: a key named after it lives in Redis
-- (jny:epoch:{epoch}). A Redis that comes back without that key lost its data, and the
-- services refuse to trust it (see activities/redis_epoch.py).
CREATE TABLE redis_epoch (
    only_row   boolean     PRIMARY KEY DEFAULT true CHECK (only_row),
    epoch      text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
