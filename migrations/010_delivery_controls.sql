-- Delivery controls. A message the gate holds for quiet hours is 'deferred' until its
-- cohort comes back (then sent, skipped or failed like any other).
ALTER TABLE deliveries DROP CONSTRAINT deliveries_status_check;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_status_check CHECK (status IN
    ('pending', 'sent', 'skipped', 'deferred', 'retrying', 'failed', 'dead', 'cancelled'));

-- Suppression lists and the allow list of test users. PostgreSQL holds the record; the gate
-- reads a copy in Redis (one set per user), which `journeys suppress sync` rebuilds.
-- channel '*' suppresses on every channel; list 'allow' rows always have channel '*'.
CREATE TABLE suppressions (
    user_id    text        NOT NULL,
    list       text        NOT NULL CHECK (list IN ('suppress', 'allow')),
    channel    text        NOT NULL DEFAULT '*',
    reason     text,
    source     text        NOT NULL DEFAULT 'cli',
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, list, channel)
);
