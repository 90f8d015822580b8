-- The tag registry (seed 004). A tag is born a draft, is tested, then published; later edits
-- go to a new draft and a publish replaces the live definition, so editing never disturbs the
-- rules running on it. A tag is disabled, never deleted: rules already using it keep working.
CREATE TABLE tags (
    name            text        PRIMARY KEY,
    state           text        NOT NULL CHECK (state IN ('draft', 'published', 'disabled')),
    draft           jsonb,       -- the definition being edited; NULL when none is pending
    draft_tested_at timestamptz, -- when `journeys tags test` last ran on that draft
    live            jsonb,       -- the published definition; NULL until the first publish
    live_version    integer     NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CHECK ((state = 'draft') = (live IS NULL))
);

CREATE TABLE tag_versions (
    name         text        NOT NULL REFERENCES tags (name),
    version      integer     NOT NULL CHECK (version >= 1),
    definition   jsonb       NOT NULL,
    published_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (name, version)
);

-- A saved audience records how it was made, so a shard that Redis lost can be made again:
-- the plan-model source (a rule, a query, a set) as JSON, or, for an uploaded file, its ids
-- in audience_members (which also answer "is this user in that list" for list tags).
ALTER TABLE audiences ADD COLUMN definition jsonb;
ALTER TABLE audiences ADD COLUMN evaluated_at timestamptz;

CREATE TABLE audience_members (
    audience text NOT NULL,
    user_id  text NOT NULL,
    PRIMARY KEY (audience, user_id)
);

DO $$
BEGIN
    GRANT SELECT ON audience_members TO journeys_reader;
EXCEPTION WHEN undefined_object OR insufficient_privilege THEN
    RAISE NOTICE 'journeys_reader cannot read audience_members here';
END $$;
