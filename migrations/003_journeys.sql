-- User events: behaviour conditions in rules, goals and exits read them.
CREATE TABLE events (
    seq         bigserial   PRIMARY KEY,
    event_id    text,
    user_id     text        NOT NULL,
    name        text        NOT NULL,
    ts          timestamptz NOT NULL,
    props       jsonb       NOT NULL DEFAULT '{}'::jsonb,
    received_at timestamptz NOT NULL DEFAULT now()
);

CREATE UNIQUE INDEX events_event_id ON events (event_id) WHERE event_id IS NOT NULL;
CREATE INDEX events_user_name_ts ON events (user_id, name, ts);

-- A/B assignments, recorded once per run, split node and user (the report's arms).
CREATE TABLE assignments (
    run_id      text        NOT NULL,
    node_id     text        NOT NULL,
    user_id     text        NOT NULL,
    arm         text        NOT NULL,
    control     boolean     NOT NULL,
    bucket      integer     NOT NULL,
    assigned_at timestamptz NOT NULL,
    PRIMARY KEY (run_id, node_id, user_id)
);

-- Conversions: the first goal event of a user within the goal window after one entry,
-- attributed to the arm and to the last message the user received before it.
CREATE TABLE conversions (
    run_id       text        NOT NULL,
    user_id      text        NOT NULL,
    entry        integer     NOT NULL,
    event_name   text        NOT NULL,
    event_id     text,
    ts           timestamptz NOT NULL,
    value        numeric,
    arm          text,
    arm_node     text,
    last_message text,
    last_node    text,
    last_channel text,
    recorded_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, user_id, entry)
);

CREATE INDEX conversions_run_arm ON conversions (run_id, arm);
