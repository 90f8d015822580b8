-- The scene decision engine (seed 004). A scene is one record, replaced as a whole (its
-- instances are checked against the new one first); an instance has one draft at a time and
-- immutable numbered versions, the newest of which is live (a rollback publishes an old
-- body again as the newest).
CREATE TABLE decision_scenes (
    scene_id   text        PRIMARY KEY,
    body       jsonb       NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE decision_drafts (
    instance_id text        PRIMARY KEY,
    scene_id    text        NOT NULL REFERENCES decision_scenes (scene_id),
    body        jsonb       NOT NULL,
    saved_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE decision_versions (
    instance_id  text        NOT NULL,
    version      integer     NOT NULL,
    scene_id     text        NOT NULL REFERENCES decision_scenes (scene_id),
    body         jsonb       NOT NULL,
    checksum     text        NOT NULL,
    note         text,
    published_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (instance_id, version)
);

-- What was decided, written in batches by the deciding process. No primary key: a call is
-- one fact, and the report aggregates by instance, strategy and group over time.
CREATE TABLE decisions (
    instance_id text        NOT NULL,
    version     integer     NOT NULL,
    strategy    text,
    grp         text,
    control     boolean     NOT NULL DEFAULT false,
    user_id     text,
    item_id     text,
    order_id    text,
    decided_at  timestamptz NOT NULL
);
CREATE INDEX decisions_instance_at ON decisions (instance_id, decided_at);
