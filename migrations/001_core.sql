-- Plans are stored as immutable numbered versions; a run is pinned to one of them.
CREATE TABLE plan_versions (
    plan_id      text        NOT NULL,
    version      integer     NOT NULL CHECK (version >= 1),
    body         jsonb       NOT NULL,
    checksum     text        NOT NULL,
    source       text,
    note         text,
    published_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (plan_id, version)
);

CREATE INDEX plan_versions_checksum ON plan_versions (plan_id, checksum);

-- User profiles: the fields templates render and rules read. Tags live in attrs.
CREATE TABLE users (
    user_id    text        PRIMARY KEY,
    email      text,
    phone      text,
    timezone   text,
    attrs      jsonb       NOT NULL DEFAULT '{}'::jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
