-- Engagement: what happened to a message after it was sent. One row per message and kind
-- (the first delivery receipt, open, click or negative event counts; later ones are the same
-- fact again). message_key is the deliveries row's idempotency key.
CREATE TABLE engagements (
    message_key text        NOT NULL,
    kind        text        NOT NULL CHECK (kind IN ('delivered', 'opened', 'clicked', 'negative')),
    event_name  text        NOT NULL,
    run_id      text        NOT NULL,
    node_id     text        NOT NULL,
    user_id     text        NOT NULL,
    channel     text        NOT NULL,
    cost        numeric,
    ts          timestamptz NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (message_key, kind)
);

CREATE INDEX engagements_run ON engagements (run_id, node_id, kind);

-- The last message a user was sent before an event: events that carry no message key (an
-- unsubscribe, a click reported without it) are attributed to it. Partial, so the pending
-- rows a page claims add nothing to it; each row enters it once, when it is settled as sent.
CREATE INDEX deliveries_user_sent ON deliveries (user_id, sent_at) WHERE status = 'sent';
