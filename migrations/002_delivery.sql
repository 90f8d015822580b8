-- Saved audiences: metadata here, members in Redis shard sets.
CREATE TABLE audiences (
    name       text        PRIMARY KEY,
    shards     integer     NOT NULL,
    total      bigint      NOT NULL,
    per_shard  bigint[]    NOT NULL,
    source     text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- One row per message: the idempotency key {run}:{node}:{user}:{entry} makes every send
-- exactly-once across activity retries, worker crashes and replays.
CREATE TABLE deliveries (
    idempotency_key text        PRIMARY KEY,
    run_id          text        NOT NULL,
    node_id         text        NOT NULL,
    user_id         text        NOT NULL,
    entry           integer     NOT NULL DEFAULT 0,
    channel         text        NOT NULL,
    status          text        NOT NULL CHECK (status IN
                        ('pending', 'sent', 'skipped', 'retrying', 'failed', 'dead', 'cancelled')),
    attempts        integer     NOT NULL DEFAULT 0,
    reason          text,
    provider_id     text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX deliveries_run ON deliveries (run_id, node_id, status);

-- In-app slots (popup / banner / widget): the app reads a user's unread rows.
CREATE TABLE inbox (
    message_id text        PRIMARY KEY,
    user_id    text        NOT NULL,
    channel    text        NOT NULL,
    slot       text,
    title      text,
    body       text        NOT NULL,
    data       jsonb       NOT NULL DEFAULT '{}'::jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    read_at    timestamptz
);

CREATE INDEX inbox_user_unread ON inbox (user_id, created_at) WHERE read_at IS NULL;
