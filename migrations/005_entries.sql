-- Entries of event-triggered journeys: the user's n-th entry into a run (the {entry} of
-- idempotency keys), the entry event's properties (entry.* rules, keyed waits) and the batch
-- that admitted it (a retried admission finds its rows instead of admitting twice).
CREATE TABLE journey_entries (
    run_id     text        NOT NULL,
    user_id    text        NOT NULL,
    entry      integer     NOT NULL CHECK (entry >= 1),
    batch      text        NOT NULL,
    event_id   text,
    props      jsonb       NOT NULL DEFAULT '{}'::jsonb,
    entered_at timestamptz NOT NULL,
    PRIMARY KEY (run_id, user_id, entry)
);

CREATE INDEX journey_entries_batch ON journey_entries (run_id, batch);
