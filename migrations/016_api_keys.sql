-- API keys for the HTTP API (journeys keys). Only a digest of each key is kept; the key
-- itself is shown once, when it is created. When any key is active, every route but the
-- health, metrics and schema ones needs one, with the scope the route asks for.
CREATE TABLE api_keys (
    key_id     text        PRIMARY KEY,
    name       text        NOT NULL,
    digest     text        NOT NULL,
    scopes     text[]      NOT NULL,
    rate       double precision,
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);
