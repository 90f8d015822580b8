"""Every SQL statement the product runs, by purpose. Schema lives in migrations/."""

from __future__ import annotations

PLAN_LATEST = """
SELECT version, checksum, published_at FROM plan_versions
WHERE plan_id = $1 ORDER BY version DESC LIMIT 1
"""

# Run under a per-plan advisory lock (plan_store.publish) so two publishers cannot both take
# N+1; the primary key backs that up.
PLAN_INSERT_VERSION = """
INSERT INTO plan_versions (plan_id, version, body, checksum, source, note)
SELECT $1, COALESCE(MAX(version), 0) + 1, $2, $3, $4, $5
FROM plan_versions WHERE plan_id = $1
RETURNING version, published_at
"""

PLAN_VERSIONS = """
SELECT version, checksum, source, note, published_at FROM plan_versions
WHERE plan_id = $1 ORDER BY version
"""

PLAN_VERSION_BODY = """
SELECT body, checksum FROM plan_versions WHERE plan_id = $1 AND version = $2
"""

USERS_UPSERT = """
INSERT INTO users (user_id, email, phone, timezone, attrs)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::jsonb[])
ON CONFLICT (user_id) DO UPDATE SET
    email = EXCLUDED.email, phone = EXCLUDED.phone, timezone = EXCLUDED.timezone,
    attrs = EXCLUDED.attrs, updated_at = now()
"""

USERS_COUNT = "SELECT count(*) FROM users"
