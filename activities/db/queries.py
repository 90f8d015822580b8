"""Every SQL statement the product runs, by purpose. Schema lives in migrations/."""

from __future__ import annotations

from dataclasses import dataclass

from journeys.events import MAX_USER_ID

PLAN_LATEST = """
SELECT version, checksum, published_at, published_by, approved_by, approved_at
FROM plan_versions
WHERE plan_id = $1 ORDER BY version DESC LIMIT 1
"""

# Run under a per-plan advisory lock (plan_store.publish) so two publishers cannot both take
# N+1; the primary key backs that up.
PLAN_INSERT_VERSION = """
INSERT INTO plan_versions (plan_id, version, body, checksum, source, note, published_by)
SELECT $1, COALESCE(MAX(version), 0) + 1, $2, $3, $4, $5, $6
FROM plan_versions WHERE plan_id = $1
RETURNING version, published_at
"""

PLAN_VERSIONS = """
SELECT version, checksum, source, note, published_at, published_by, approved_by, approved_at
FROM plan_versions WHERE plan_id = $1 ORDER BY version
"""

PLAN_VERSION_APPROVAL = """
SELECT published_by, approved_by, approved_at FROM plan_versions
WHERE plan_id = $1 AND version = $2
"""

# Only a version still unapproved: two approvers at once, one wins.
PLAN_APPROVE = """
UPDATE plan_versions SET approved_by = $3, approved_at = now()
WHERE plan_id = $1 AND version = $2 AND approved_at IS NULL
RETURNING approved_at
"""

# --- the audit log (append-only: its triggers refuse UPDATE, DELETE and TRUNCATE) -----------
AUDIT_INSERT = """
INSERT INTO audit_log (actor, action, plan_id, version, run_id, subject, detail)
VALUES ($1, $2, $3, $4, $5, $6, $7)
"""

AUDIT_LIST = """
SELECT id, at, actor, action, plan_id, version, run_id, subject, detail FROM audit_log
WHERE ($1::text IS NULL OR plan_id = $1) AND ($2::text IS NULL OR run_id = $2)
ORDER BY id DESC LIMIT $3
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

# journeys profiles load: rows are COPYed into this table, then upserted in one statement, so
# a refused file leaves nothing behind (the transaction drops the table). attrs travel as JSON
# text: binary COPY has no encoder for jsonb.
PROFILES_STAGE = """
CREATE TEMP TABLE profile_stage (
    line integer NOT NULL, user_id text NOT NULL, email text, phone text, timezone text,
    attrs text NOT NULL
) ON COMMIT DROP
"""
PROFILES_STAGE_COLUMNS = ("line", "user_id", "email", "phone", "timezone", "attrs")

# The last line of a user wins; a column left empty keeps what was stored, and attributes are
# merged into the stored ones. Returns how many users were new and how many were updated.
_PROFILES_MERGE = """
    ON CONFLICT (user_id) DO UPDATE SET
        email = COALESCE(EXCLUDED.email, users.email),
        phone = COALESCE(EXCLUDED.phone, users.phone),
        timezone = COALESCE(EXCLUDED.timezone, users.timezone),
        attrs = users.attrs || EXCLUDED.attrs,
        updated_at = now()
    RETURNING (xmax = 0) AS inserted
)
SELECT count(*) FILTER (WHERE inserted) AS new, count(*) FILTER (WHERE NOT inserted) AS updated
FROM upserted
"""
PROFILES_UPSERT = (
    """
WITH upserted AS (
    INSERT INTO users (user_id, email, phone, timezone, attrs)
    SELECT DISTINCT ON (user_id) user_id, email, phone, timezone, attrs::jsonb
    FROM profile_stage ORDER BY user_id, line DESC"""
    + _PROFILES_MERGE
)


def profile_csv_stage(columns: int) -> str:
    """The staging table a CSV profiles file is COPYed into as it is: ``line`` (in file order)
    and one text column ``c<n>`` per column of its header."""
    cells = ", ".join(f"c{n} text" for n in range(columns))
    return f"CREATE TEMP TABLE profile_raw (line bigserial, {cells}) ON COMMIT DROP"


def _cell(column: str) -> str:
    # a cell as the rules read it (journeys.profile_file.cell_value): bool, number, or text
    return (
        f"CASE WHEN {column} IS NULL OR {column} = '' THEN NULL"
        f" WHEN {column} IN ('true', 'false') THEN to_jsonb({column} = 'true')"
        f" WHEN {column} ~ '^-?(0|[1-9][0-9]*)(\\.[0-9]+)?([eE][+-]?[0-9]{{1,2}})?$'"
        f" THEN to_jsonb({column}::numeric)"
        f" ELSE to_jsonb({column}) END"
    )


def profile_csv_reason(*, user_id: str, timezone: str | None) -> str:
    """Why a staged row is bad (NULL when it is good); ``z.name`` is its zone, looked up."""
    uid = f"btrim({user_id})"
    zone = (
        f" WHEN NULLIF(btrim({timezone}), '') IS NOT NULL AND z.name IS NULL THEN"
        f" format('timezone \"%s\" is not an IANA time zone', left(btrim({timezone}), 60))"
        if timezone
        else ""
    )
    return (
        f"CASE WHEN NULLIF({uid}, '') IS NULL THEN 'user_id is missing'"
        f" WHEN {uid} ~ '[[:cntrl:]]' THEN 'user_id must not contain control characters'"
        f" WHEN length({uid}) > {MAX_USER_ID:d}"
        f" THEN 'user_id is longer than {MAX_USER_ID:d} characters'{zone} END"
    )


_NUMBER_RE = "'^-?(0|[1-9][0-9]*)(\\.[0-9]+)?([eE][+-]?[0-9]{1,2})?$'"


def _typed_cell(column: str, kind: str, name: str, values: str | None) -> tuple[str, str]:
    """A cell read as a registry tag of type ``kind`` declares it, and why it does not fit
    (NULL when it does); ``name`` is the attribute's parameter, ``values`` an enum's."""
    given = f"NULLIF({column}, '')"
    if kind == "number":
        fits = f"{column} ~ {_NUMBER_RE}"
        value = f"CASE WHEN {fits} THEN to_jsonb({column}::numeric) END"
        noun = "a number"
    elif kind == "bool":
        fits = f"{column} IN ('true', 'false')"
        value = f"CASE WHEN {fits} THEN to_jsonb({column} = 'true') END"
        noun = "true or false"
    elif kind == "datetime":
        fits = f"COALESCE(journeys_ts({column}), journeys_date({column})::timestamptz) IS NOT NULL"
        value = f"CASE WHEN {fits} THEN to_jsonb({column}) END"
        noun = "a date or a date-time"
    elif kind == "list":
        return f"to_jsonb(string_to_array({given}, '|'))", "NULL"
    elif kind == "enum" and values is not None:
        fits = f"{column} = ANY({values})"
        value = f"to_jsonb({given})"
        noun = "one of its declared values"
    else:
        return f"to_jsonb({given})", "NULL"
    reason = (
        f"CASE WHEN {given} IS NOT NULL AND NOT ({fits}) THEN"
        f" format('%s: \"%s\" is not {noun}', {name}, left({column}, 60)) END"
    )
    return f"CASE WHEN {given} IS NOT NULL THEN {value} END", reason


@dataclass(frozen=True)
class ProfileCsvSql:
    """The statements of a CSV profiles load after its COPY into ``profile_raw``.

    ``check`` writes the bad lines (with why) into ``bad_lines``; its parameters are the
    names of the registry-typed columns, then the declared values of each enum among them
    (``check_params``: indexes into the attribute names, or ``("values", k)``). ``upsert``
    types the other lines and merges them into ``users``; its parameters are the attribute
    names. A bad line is found once, by its reason, and the upsert skips it by line number:
    no typed copy of the file is ever written, which was half the load's time.
    """

    check: str
    check_params: list[int | tuple[str, int]]
    upsert: str


def profile_csv_sql(
    *,
    user_id: str,
    contact: dict[str, str],
    attrs: list[str],
    types: dict[str, tuple[str, list[str] | None]] | None = None,
) -> ProfileCsvSql:
    """The check and the upsert of a CSV load: ``attrs`` are the staging columns of the
    attributes, in header order; ``types`` maps some of them to the type a registry tag
    declares (and an enum's values); the others are typed by their text."""
    types = types or {}
    zone = contact.get("timezone")
    check_params: list[int | tuple[str, int]] = []
    cells, reasons = [], []
    for i, column in enumerate(attrs):
        name = f"${i + 1}::text"
        if column not in types:
            cells.append(f"{name}, {_cell(column)}")
            continue
        kind, declared = types[column]
        if kind in ("string", "list"):  # any text fits: nothing to check, no parameter
            cells.append(f"{name}, {_typed_cell(column, kind, name, None)[0]}")
            continue
        check_params.append(i)
        checked_name = f"${len(check_params)}::text"
        values = None
        if declared is not None:
            check_params.append(("values", i))
            values = f"${len(check_params)}::text[]"
        cell, reason = _typed_cell(column, kind, checked_name, values)
        cells.append(f"{name}, {cell}")
        reasons.append(reason)
    row_reason = profile_csv_reason(user_id=user_id, timezone=zone)
    reason = f"COALESCE({', '.join([row_reason, *reasons])})" if reasons else row_reason
    join = f" LEFT JOIN zones z ON z.name = btrim({zone})" if zone else ""
    check = (
        "CREATE TEMP TABLE bad_lines ON COMMIT DROP AS"
        " WITH zones AS MATERIALIZED (SELECT name FROM pg_timezone_names)"
        f" SELECT line, reason FROM (SELECT line, {reason} AS reason FROM profile_raw r{join}) x"
        " WHERE reason IS NOT NULL"
    )
    built = f"jsonb_strip_nulls(jsonb_build_object({', '.join(cells)}))" if attrs else "'{}'::jsonb"
    columns = ", ".join(
        (f"NULLIF(btrim({contact[name]}), '')" if name in contact else "NULL::text") + f" AS {name}"
        for name in ("email", "phone", "timezone")
    )
    upsert = (
        "WITH upserted AS ("
        " INSERT INTO users (user_id, email, phone, timezone, attrs)"
        f" SELECT DISTINCT ON (btrim({user_id})) btrim({user_id}), {columns}, {built}"
        " FROM profile_raw r"
        " WHERE NOT EXISTS (SELECT 1 FROM bad_lines b WHERE b.line = r.line)"
        f" ORDER BY btrim({user_id}), line DESC" + _PROFILES_MERGE
    )
    return ProfileCsvSql(check=check, check_params=check_params, upsert=upsert)


PROFILE_CSV_BAD = "SELECT line, reason FROM bad_lines ORDER BY line LIMIT 100"
PROFILE_CSV_COUNTS = (
    "SELECT (SELECT count(*) FROM profile_raw) AS lines, (SELECT count(*) FROM bad_lines) AS bad"
)

PROFILE_BY_ID = """
SELECT user_id, email, phone, timezone, attrs, created_at, updated_at FROM users
WHERE user_id = $1
"""

USERS_BY_IDS = """
SELECT user_id, email, phone, timezone, attrs FROM users
WHERE user_id = ANY(ARRAY(SELECT json_array_elements_text($1::json)))
"""

# Claim a page's delivery rows: new users get a 'pending' row stamped with this pass; rows
# that exist (an earlier execution of this page, or an earlier pass) come back as they are.
# Rows inserted by the CTE are invisible to the second SELECT, hence the UNION. The second
# SELECT looks the keys up with = ANY (the primary key), not a join with the input: the planner
# cannot see the input's size and chose a hash join over a sequential scan of all deliveries.
DELIVERIES_CLAIM = """
WITH input AS (
    SELECT * FROM unnest($1::text[], $2::text[], $5::integer[])
        AS t(idempotency_key, user_id, entry)
), ins AS (
    INSERT INTO deliveries (idempotency_key, run_id, node_id, user_id, entry, channel,
                            status, attempts)
    SELECT idempotency_key, $3, $4, user_id, entry, $6, 'pending', $7 FROM input
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING idempotency_key, status, attempts, reason
)
SELECT idempotency_key, status, attempts, reason FROM ins
UNION ALL
SELECT d.idempotency_key, d.status, d.attempts, d.reason
FROM deliveries d WHERE d.idempotency_key = ANY($1::text[])
"""

# Record the outcome of each message of a page in one statement.
DELIVERIES_SETTLE = """
UPDATE deliveries AS d SET
    status = r.status,
    reason = r.reason,
    provider_id = r.provider_id,
    attempts = $5,
    sent_at = CASE WHEN r.status = 'sent' THEN now() ELSE d.sent_at END,
    updated_at = now()
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])
    AS r(idempotency_key, status, reason, provider_id)
WHERE d.idempotency_key = r.idempotency_key
"""

# In-app messages, one row per message keyed by its idempotency key: a replayed send adds none.
# ``data`` arrives as JSON text (encoded once per page when every row's is the same).
INBOX_INSERT = """
INSERT INTO inbox (message_id, user_id, channel, slot, title, body, data)
SELECT message_id, user_id, channel, slot, title, body, data::jsonb FROM unnest(
    $1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[]
) AS t(message_id, user_id, channel, slot, title, body, data)
ON CONFLICT (message_id) DO NOTHING
"""

# The input of a page to the inbox: one JSON array per column (activities/db/params.py says
# why not text[]), one item per user, zipped by ROWS FROM. A null title or data means the
# page's own ($13, $14): most pages share them.
_INBOX_INPUT = """
WITH page AS (SELECT $13::text AS title, $14::text::jsonb AS data),
input AS (
    SELECT k AS idempotency_key, u AS user_id, e::integer AS entry, ti AS title, b AS body,
           d AS data, r AS reason
    FROM ROWS FROM (json_array_elements_text($1::json), json_array_elements_text($2::json),
                    json_array_elements_text($3::json), json_array_elements_text($4::json),
                    json_array_elements_text($5::json), json_array_elements_text($6::json),
                    json_array_elements_text($7::json)) AS t(k, u, e, ti, b, d, r)
)"""

_INBOX_ROWS = """
    INSERT INTO deliveries (idempotency_key, run_id, node_id, user_id, entry, channel,
                            status, attempts, reason, provider_id, sent_at)
    SELECT idempotency_key, $8, $9, user_id, entry, $10,
           CASE WHEN reason IS NULL THEN 'sent' ELSE 'failed' END, $11, reason,
           CASE WHEN reason IS NULL THEN idempotency_key END,
           CASE WHEN reason IS NULL THEN now() END
    FROM input"""

# A page to the inbox in one statement: the delivery rows are inserted already settled ('sent',
# or 'failed' with the reason a message could not be rendered) together with the inbox rows of
# the sent ones, so a crash leaves both or neither and no row is written twice. Only the rows
# that are not sent just now come back: those that failed to render, and those that existed
# (as in DELIVERIES_CLAIM); every key missing from the answer was sent by this statement.
INBOX_DELIVER = (
    _INBOX_INPUT
    + """, ins AS ("""
    + _INBOX_ROWS
    + """
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING idempotency_key, status, attempts, reason
), box AS (
    INSERT INTO inbox (message_id, user_id, channel, slot, title, body, data)
    SELECT i.idempotency_key, i.user_id, $10, $12, COALESCE(i.title, page.title), i.body,
           COALESCE(i.data::jsonb, page.data)
    FROM input i JOIN ins USING (idempotency_key) CROSS JOIN page
    WHERE i.reason IS NULL
    ON CONFLICT (message_id) DO NOTHING
)
SELECT idempotency_key, status, attempts, reason FROM ins WHERE status <> 'sent'
UNION ALL
SELECT d.idempotency_key, d.status, d.attempts, d.reason
FROM deliveries d WHERE d.idempotency_key = ANY(ARRAY(SELECT idempotency_key FROM input))
"""
)

# The same for a page tried for the first time, when no row can exist yet: plain inserts, with
# no conflict checks and no lookup of existing rows (a unique violation aborts the whole
# statement, and the page is sent again with INBOX_DELIVER). Returns the render failures.
INBOX_DELIVER_NEW = (
    _INBOX_INPUT
    + """, ins AS ("""
    + _INBOX_ROWS
    + """
), box AS (
    INSERT INTO inbox (message_id, user_id, channel, slot, title, body, data)
    SELECT idempotency_key, user_id, $10, $12, COALESCE(input.title, page.title), body,
           COALESCE(input.data::jsonb, page.data)
    FROM input CROSS JOIN page
    WHERE reason IS NULL
)
SELECT idempotency_key, 'failed' AS status, $11 AS attempts, reason
FROM input WHERE reason IS NOT NULL
"""
)

# What the delivery gate decided for the users it stopped on a page to the inbox: 'skipped'
# or 'deferred' with the reason, inserted, or written over a row not settled for good (a user
# back from quiet hours or a bid). Returns every key's row, as DELIVERIES_CLAIM does.
DELIVERIES_RECORD = """
WITH input AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::integer[], $4::text[], $5::text[])
        AS t(idempotency_key, user_id, entry, status, reason)
), up AS (
    INSERT INTO deliveries (idempotency_key, run_id, node_id, user_id, entry, channel,
                            status, attempts, reason)
    SELECT idempotency_key, $6, $7, user_id, entry, $8, status, $9, reason FROM input
    ON CONFLICT (idempotency_key) DO UPDATE
        SET status = EXCLUDED.status, reason = EXCLUDED.reason, attempts = EXCLUDED.attempts,
            updated_at = now()
        WHERE deliveries.status NOT IN ('sent', 'skipped', 'failed', 'dead')
    RETURNING idempotency_key, status, attempts, reason
)
SELECT idempotency_key, status, attempts, reason FROM up
UNION ALL
SELECT d.idempotency_key, d.status, d.attempts, d.reason FROM deliveries d
WHERE d.idempotency_key = ANY($1::text[])
  AND d.idempotency_key NOT IN (SELECT idempotency_key FROM up)
"""

# The keys of a page's messages that are settled for good (a re-executed page checks only
# the others against the delivery gate).
DELIVERIES_FINAL = """
SELECT idempotency_key FROM deliveries
WHERE idempotency_key = ANY($1::text[]) AND status IN ('sent', 'skipped', 'failed', 'dead')
"""

INBOX_UNREAD = """
SELECT message_id, channel, slot, title, body, data, created_at FROM inbox
WHERE user_id = $1 AND read_at IS NULL ORDER BY created_at, message_id
"""

# Saved audiences (activities/audience/shard_sets.py). Uploads of one name are serialised by a
# transaction-scoped advisory lock; the prefix keeps it apart from the plan-publish lock.
AUDIENCE_LOCK = "SELECT pg_advisory_xact_lock(hashtext('audience:' || $1))"

# clock_timestamp(), not now(): the transaction began before the ids were written.
# $6: the plan-model source of an evaluated audience (NULL for an upload, whose ids are in
# audience_members); evaluated_at is when its source was last evaluated.
AUDIENCE_UPSERT = """
INSERT INTO audiences (name, shards, total, per_shard, source, definition, evaluated_at, updated_at)
VALUES ($1, $2, $3, $4::bigint[], $5, $6, CASE WHEN $6::jsonb IS NULL THEN NULL
    ELSE clock_timestamp() END, clock_timestamp())
ON CONFLICT (name) DO UPDATE SET
    shards = EXCLUDED.shards, total = EXCLUDED.total, per_shard = EXCLUDED.per_shard,
    source = EXCLUDED.source, definition = EXCLUDED.definition,
    evaluated_at = EXCLUDED.evaluated_at, updated_at = EXCLUDED.updated_at
RETURNING name, shards, total, per_shard, source, definition, evaluated_at, updated_at
"""

AUDIENCE_SELECT = """
SELECT name, shards, total, per_shard, source, definition, evaluated_at, updated_at
FROM audiences WHERE name = $1
"""

AUDIENCE_MEMBERS_CLEAR = "DELETE FROM audience_members WHERE audience = $1"

AUDIENCE_MEMBERS_COUNT = "SELECT count(*) FROM audience_members WHERE audience = $1"

AUDIENCE_MEMBERS = "SELECT user_id FROM audience_members WHERE audience = $1"

# --- journeys: profiles, events, assignments, conversions --------------------------------

# Make sure every user of a page has a profile row before an update step writes to it.
USERS_ENSURE = """
INSERT INTO users (user_id) SELECT unnest($1::text[]) ON CONFLICT (user_id) DO NOTHING
"""

# An update step: merge $2 into attrs; when $5, add tags $3 and remove tags $4 in attrs.tags
# (kept sorted and unique). One statement per page, so concurrent plans never lose a write.
USERS_APPLY_UPDATE = """
UPDATE users SET
    attrs = CASE WHEN $5 THEN jsonb_set(attrs || $2::jsonb, '{tags}', COALESCE((
        SELECT jsonb_agg(t ORDER BY t) FROM (
            SELECT jsonb_array_elements_text(CASE WHEN jsonb_typeof(attrs -> 'tags') = 'array'
                                                  THEN attrs -> 'tags' ELSE '[]'::jsonb END)
            UNION SELECT unnest($3::text[])
        ) AS tags(t) WHERE NOT (t = ANY($4::text[]))
    ), '[]'::jsonb)) ELSE attrs || $2::jsonb END,
    updated_at = now()
WHERE user_id = ANY($1::text[])
"""

# Store events; a repeated event_id is dropped. Returns the new rows' seq and event_id.
# $6 says, per event, that nobody listens for it: it is stored routed, so it is written
# once (marking it afterwards would write every row and its four index entries twice).
EVENTS_INSERT = """
INSERT INTO events (event_id, user_id, name, ts, props, routed_at)
SELECT t.event_id, t.user_id, t.name, t.ts, t.props, CASE WHEN t.settled THEN now() END
FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::jsonb[], $6::boolean[])
    AS t(event_id, user_id, name, ts, props, settled)
ON CONFLICT (event_id) WHERE event_id IS NOT NULL DO NOTHING
RETURNING seq, event_id, routed_at IS NULL AS pending
"""

# Stored events of these ids not yet routed (a retried POST after a crash mid-way).
EVENTS_UNROUTED = """
SELECT seq, event_id FROM events WHERE event_id = ANY($1::text[]) AND routed_at IS NULL
"""

EVENTS_MARK_ROUTED = "UPDATE events SET routed_at = now() WHERE seq = ANY($1::bigint[])"

# A page's behaviour facts: its users' events of the names a rule reads, in a window.
EVENTS_FOR_USERS = """
SELECT user_id, name, ts, props FROM events
WHERE user_id = ANY($1::text[]) AND name = ANY($2::text[]) AND ts >= $3 AND ts <= $4
"""

ASSIGNMENTS_INSERT = """
INSERT INTO assignments (run_id, node_id, user_id, arm, control, bucket, assigned_at, by_winner)
SELECT $1, $2, t.user_id, t.arm, t.control, t.bucket, $7, t.by_winner
FROM unnest($3::text[], $4::text[], $5::boolean[], $6::integer[], $8::boolean[])
    AS t(user_id, arm, control, bucket, by_winner)
ON CONFLICT (run_id, node_id, user_id) DO NOTHING
"""

# A winning path's figures: per arm, the users the test split (never those sent to the
# winner) and how many of them succeeded by the metric (converted at this split, or clicked
# a message of the run after the split assigned them: clicks on what every arm got before
# it tell the arms nothing apart).
WINNER_CONVERSIONS = """
SELECT a.arm, count(*) AS users, count(c.user_id) AS successes
FROM assignments a
LEFT JOIN (SELECT DISTINCT user_id FROM conversions WHERE run_id = $1 AND arm_node = $2) c
    ON c.user_id = a.user_id
WHERE a.run_id = $1 AND a.node_id = $2 AND NOT a.by_winner GROUP BY a.arm
"""
WINNER_CLICKS = """
SELECT a.arm, count(*) AS users, count(c.user_id) AS successes
FROM assignments a
LEFT JOIN (
    SELECT user_id, max(ts) AS ts FROM engagements
    WHERE run_id = $1 AND kind = 'clicked' GROUP BY user_id
) c ON c.user_id = a.user_id AND c.ts >= a.assigned_at
WHERE a.run_id = $1 AND a.node_id = $2 AND NOT a.by_winner GROUP BY a.arm
"""

# The first shard to decide records the decision; every later ask reads it back.
WINNER_RECORD = """
WITH ins AS (
    INSERT INTO winners (run_id, node_id, arm, significant, metric, figures, decided_at)
    VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7)
    ON CONFLICT (run_id, node_id) DO NOTHING
    RETURNING arm, significant
)
SELECT arm, significant FROM ins
UNION ALL
SELECT arm, significant FROM winners WHERE run_id = $1 AND node_id = $2
LIMIT 1
"""
WINNER_OF = "SELECT arm, significant FROM winners WHERE run_id = $1 AND node_id = $2"
REPORT_WINNERS = """
SELECT w.node_id, w.arm, w.significant, w.metric, w.figures, w.decided_at,
       (SELECT count(*) FROM assignments a
        WHERE a.run_id = w.run_id AND a.node_id = w.node_id AND a.by_winner) AS sent_to_winner
FROM winners w WHERE w.run_id = $1 ORDER BY w.node_id
"""

# First goal event per user and entry ($9) wins. The arm is the user's latest assignment in the
# run; the last message is looked up by primary key over the plan's send nodes ($7), so no
# extra index on deliveries slows the blast path.
CONVERSIONS_RECORD = """
WITH input AS (
    SELECT * FROM unnest($2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::numeric[],
                         $9::integer[])
        AS t(user_id, event_name, event_id, ts, value, entry)
)
INSERT INTO conversions (run_id, user_id, entry, event_name, event_id, ts, value,
                         arm, arm_node, last_message, last_node, last_channel)
SELECT $1, i.user_id, i.entry, i.event_name, i.event_id, i.ts, i.value,
       a.arm, a.node_id, d.idempotency_key, d.node_id, d.channel
FROM input i
LEFT JOIN LATERAL (
    SELECT arm, node_id FROM assignments
    WHERE run_id = $1 AND user_id = i.user_id AND node_id = ANY($8::text[])
    ORDER BY assigned_at DESC, node_id DESC LIMIT 1
) a ON true
LEFT JOIN LATERAL (
    SELECT idempotency_key, node_id, channel FROM deliveries
    WHERE idempotency_key = ANY(
        ARRAY(SELECT $1 || ':' || n || ':' || i.user_id || ':' || i.entry
              FROM unnest($7::text[]) AS n)
    ) AND status = 'sent'
    ORDER BY sent_at DESC NULLS LAST LIMIT 1
) d ON true
ON CONFLICT (run_id, user_id, entry) DO NOTHING
RETURNING user_id, arm, value
"""

# --- event-triggered entries ---------------------------------------------------------------

ENTRIES_OF_BATCH = """
SELECT user_id, entry FROM journey_entries WHERE run_id = $1 AND batch = $2
"""

ENTRIES_LATEST = """
SELECT DISTINCT ON (user_id) user_id, entry, entered_at FROM journey_entries
WHERE run_id = $1 AND user_id = ANY($2::text[]) ORDER BY user_id, entry DESC
"""

ENTRIES_OF_EVENTS = """
SELECT event_id FROM journey_entries WHERE run_id = $1 AND event_id = ANY($2::text[])
"""

ENTRIES_INSERT = """
INSERT INTO journey_entries (run_id, user_id, entry, batch, event_id, props, entered_at)
SELECT $1, t.user_id, t.entry, $2, t.event_id, t.props, $7
FROM unnest($3::text[], $4::integer[], $5::text[], $6::jsonb[])
    AS t(user_id, entry, event_id, props)
ON CONFLICT (run_id, user_id, entry) DO NOTHING
"""

ENTRIES_PROPS = """
SELECT user_id, entry, props FROM journey_entries
WHERE run_id = $1 AND (user_id, entry) IN (
    SELECT * FROM unnest($2::text[], $3::integer[])
)
"""

# The user's latest entry whose goal window holds the event's time.
ENTRIES_FOR_GOAL = """
SELECT DISTINCT ON (e.user_id) e.user_id, e.entry
FROM journey_entries e JOIN unnest($2::text[], $3::timestamptz[]) AS t(user_id, ts)
    ON e.user_id = t.user_id AND e.entered_at <= t.ts AND e.entered_at + $4::interval >= t.ts
WHERE e.run_id = $1
ORDER BY e.user_id, e.entry DESC
"""

# Whether this session may act as journeys_reader, the role SQL audiences run as.
CAN_BE_READER = """
SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'journeys_reader')
       AND pg_has_role(current_user, 'journeys_reader', 'MEMBER')
"""

# --- the tag registry (activities/db/tag_store.py) ----------------------------------------

TAGS_BY_NAMES = """
SELECT name, state, draft, draft_tested_at, live, live_version, created_at, updated_at
FROM tags WHERE name = ANY($1::text[]) ORDER BY name
"""

# publish reads the tags a new version uses FOR SHARE: a disable cannot slip in before commit
TAGS_BY_NAMES_FOR_SHARE = TAGS_BY_NAMES.rstrip() + " FOR SHARE\n"

TAGS_ALL = """
SELECT name, state, draft, draft_tested_at, live, live_version, created_at, updated_at
FROM tags ORDER BY name
"""

TAG_LOCK = """
SELECT name, state, draft, draft_tested_at, live, live_version FROM tags WHERE name = $1
FOR UPDATE
"""

# a new name: inserted, then locked like any other (two defines of it take turns)
TAG_ENSURE = "INSERT INTO tags (name, state, draft) VALUES ($1, 'draft', $2) ON CONFLICT DO NOTHING"

TAG_SET_DRAFT = """
UPDATE tags SET draft = $2, draft_tested_at = NULL, updated_at = now() WHERE name = $1
"""

# only the draft that was tried: a define that replaced it meanwhile leaves it untested
TAG_MARK_TESTED = "UPDATE tags SET draft_tested_at = now() WHERE name = $1 AND draft = $2"

TAG_PUBLISH = """
WITH bumped AS (
    UPDATE tags SET live = draft, draft = NULL, draft_tested_at = NULL,
        live_version = live_version + 1,
        state = CASE WHEN state = 'draft' THEN 'published' ELSE state END, updated_at = now()
    WHERE name = $1 RETURNING name, live, live_version
)
INSERT INTO tag_versions (name, version, definition)
SELECT name, live_version, live FROM bumped RETURNING version
"""

TAG_SET_STATE = "UPDATE tags SET state = $2, updated_at = now() WHERE name = $1"

# Every stored plan version, newest first per plan: `tags usage` reads their rules.
PLAN_BODIES = "SELECT plan_id, version, body FROM plan_versions ORDER BY plan_id, version DESC"


# Suppression lists and the allow list (activities/controls/suppression.py): PostgreSQL holds
# the record, Redis the copy the delivery gate reads.
SUPPRESSIONS_ADD = """
INSERT INTO suppressions (user_id, list, channel, reason, source)
SELECT user_id, $2, $3, $4, $5 FROM unnest($1::text[]) AS t(user_id)
ON CONFLICT (user_id, list, channel) DO NOTHING
RETURNING user_id
"""

SUPPRESSIONS_REMOVE = """
DELETE FROM suppressions WHERE user_id = ANY($1::text[]) AND list = $2 AND channel = $3
RETURNING user_id
"""

SUPPRESSIONS_LIST = """
SELECT user_id, list, channel, reason, source, created_at FROM suppressions
WHERE ($1::text IS NULL OR user_id = $1) AND ($2::text IS NULL OR list = $2)
ORDER BY user_id, list, channel LIMIT $3
"""

REDIS_EPOCH = "SELECT epoch FROM redis_epoch"

REDIS_EPOCH_CLAIM = """
INSERT INTO redis_epoch (epoch) VALUES ($1) ON CONFLICT (only_row) DO NOTHING
"""

SUPPRESSIONS_ALL = "SELECT user_id, list, channel FROM suppressions ORDER BY user_id"

SUPPRESSIONS_OF = "SELECT user_id, list, channel FROM suppressions WHERE user_id = ANY($1::text[])"

# journeys report: what a run did, from the ledger, the assignments and the conversions.
REPORT_DELIVERIES = """
SELECT node_id, channel, status, reason, count(*) AS users FROM deliveries WHERE run_id = $1
GROUP BY node_id, channel, status, reason ORDER BY node_id, channel, status, reason NULLS FIRST
"""

REPORT_ENGAGEMENT = """
SELECT node_id, kind, count(*) AS messages, COALESCE(sum(cost), 0) AS cost FROM engagements
WHERE run_id = $1 GROUP BY node_id, kind ORDER BY node_id, kind
"""

# An arm's users: those the split assigned it (not those sent to a winner afterwards).
REPORT_ARM_USERS = """
SELECT node_id, arm, bool_or(control) AS control, count(*) AS users FROM assignments
WHERE run_id = $1 AND NOT by_winner GROUP BY node_id, arm ORDER BY node_id, arm
"""

# An arm's conversions: its users' first conversion at the split (conversions carry the
# arm), each checked against its assignment by primary key.
REPORT_ARM_CONVERSIONS = """
SELECT c.arm_node AS node_id, c.arm, count(*) AS converted, COALESCE(sum(c.value), 0) AS value
FROM (
    SELECT DISTINCT ON (user_id, arm_node) user_id, arm_node, arm, value FROM conversions
    WHERE run_id = $1 AND arm_node IS NOT NULL ORDER BY user_id, arm_node, ts
) c
JOIN assignments a ON a.run_id = $1 AND a.node_id = c.arm_node AND a.user_id = c.user_id
WHERE NOT a.by_winner
GROUP BY c.arm_node, c.arm ORDER BY c.arm_node, c.arm
"""

# The messages of a split's arms when a winner took users along the same paths: only those
# to the users the split assigned, at the arms' own nodes ($3).
REPORT_ARM_MESSAGES = """
SELECT a.arm, d.channel, count(*) AS sent
FROM assignments a
JOIN deliveries d ON d.run_id = a.run_id AND d.user_id = a.user_id AND d.status = 'sent'
WHERE a.run_id = $1 AND a.node_id = $2 AND NOT a.by_winner AND d.node_id = ANY($3::text[])
GROUP BY a.arm, d.channel ORDER BY a.arm, d.channel
"""

REPORT_ARM_ENGAGEMENT = """
SELECT a.arm, e.kind, count(*) AS messages, COALESCE(sum(e.cost), 0) AS cost
FROM assignments a JOIN engagements e ON e.run_id = a.run_id AND e.user_id = a.user_id
WHERE a.run_id = $1 AND a.node_id = $2 AND NOT a.by_winner AND e.node_id = ANY($3::text[])
GROUP BY a.arm, e.kind ORDER BY a.arm, e.kind
"""

# Conversions over time: hours from the first (the chart's line); a user's first per entry.
REPORT_TIMELINE = """
SELECT date_trunc('hour', ts, 'UTC') AS at, count(*) AS conversions,
       COALESCE(sum(value), 0) AS value
FROM conversions WHERE run_id = $1 GROUP BY 1 ORDER BY 1
"""

REPORT_CONVERSIONS = """
SELECT count(DISTINCT user_id) AS users, count(*) AS conversions,
       COALESCE(sum(value), 0) AS value
FROM conversions WHERE run_id = $1
"""

# --- engagement (activities/engagement.py) -------------------------------------------------

_ENGAGEMENT_INSERT = """
INSERT INTO engagements (message_key, kind, event_name, run_id, node_id, user_id, channel,
                         cost, ts)
SELECT d.idempotency_key, $1, $2, d.run_id, d.node_id, d.user_id, d.channel, $3, e.ts
"""

# Events that carry their message's key: the message must be the same user's, sent, and on
# one of the channels the event is mapped for ($6 NULL: any channel).
ENGAGEMENT_BY_KEY = (
    _ENGAGEMENT_INSERT
    + """FROM unnest($4::text[], $5::timestamptz[], $7::text[]) AS e(user_id, ts, key)
JOIN deliveries d ON d.idempotency_key = e.key AND d.user_id = e.user_id AND d.status = 'sent'
WHERE $6::text[] IS NULL OR d.channel = ANY($6::text[])
ON CONFLICT (message_key, kind) DO NOTHING
"""
)

# Events without a key: the user's last message sent within $7 before the event
# (deliveries_user_sent, read backwards), on the mapped channels ($6 NULL: any channel).
ENGAGEMENT_LAST_MESSAGE = (
    _ENGAGEMENT_INSERT
    + """FROM unnest($4::text[], $5::timestamptz[]) AS e(user_id, ts)
CROSS JOIN LATERAL (
    SELECT idempotency_key, run_id, node_id, user_id, channel FROM deliveries
    WHERE user_id = e.user_id AND status = 'sent'
      AND sent_at <= e.ts AND sent_at > e.ts - $7::interval
      AND ($6::text[] IS NULL OR channel = ANY($6::text[]))
    ORDER BY sent_at DESC LIMIT 1
) d
ON CONFLICT (message_key, kind) DO NOTHING
"""
)

# The app reads (or clicks) an inbox message: read_at is set once, and the message's
# engagement rows ($3 kinds, $4 their event names) are recorded when it has a ledger row
# (a test send has none). Nothing happens for a message that is not this user's.
INBOX_ENGAGE = """
WITH msg AS (
    UPDATE inbox SET read_at = COALESCE(read_at, now())
    WHERE message_id = $1 AND user_id = $2
    RETURNING message_id, read_at
), noted AS (
    INSERT INTO engagements (message_key, kind, event_name, run_id, node_id, user_id, channel, ts)
    SELECT d.idempotency_key, k.kind, k.name, d.run_id, d.node_id, d.user_id, d.channel, now()
    FROM msg JOIN deliveries d ON d.idempotency_key = msg.message_id AND d.status = 'sent'
    CROSS JOIN unnest($3::text[], $4::text[]) AS k(kind, name)
    ON CONFLICT (message_key, kind) DO NOTHING
)
SELECT message_id, read_at FROM msg
"""


# --- the decision engine (activities/db/decision_store.py) -------------------------------

DECISION_SCENE_UPSERT = """
INSERT INTO decision_scenes (scene_id, body) VALUES ($1, $2)
ON CONFLICT (scene_id) DO UPDATE SET body = EXCLUDED.body, updated_at = now()
"""

DECISION_SCENE = "SELECT body FROM decision_scenes WHERE scene_id = $1"

# Each instance of a scene: its live body and its draft, for checking a changed scene.
DECISION_SCENE_INSTANCES = """
SELECT v.instance_id, v.body FROM decision_versions v
WHERE v.scene_id = $1 AND v.version = (
    SELECT max(version) FROM decision_versions WHERE instance_id = v.instance_id)
UNION ALL
SELECT instance_id, body FROM decision_drafts WHERE scene_id = $1
"""

DECISION_DRAFT_SAVE = """
INSERT INTO decision_drafts (instance_id, scene_id, body) VALUES ($1, $2, $3)
ON CONFLICT (instance_id) DO UPDATE
SET scene_id = EXCLUDED.scene_id, body = EXCLUDED.body, saved_at = now()
RETURNING saved_at
"""

DECISION_DRAFT = "SELECT body, saved_at FROM decision_drafts WHERE instance_id = $1"

DECISION_DRAFT_DELETE = "DELETE FROM decision_drafts WHERE instance_id = $1"

DECISION_LATEST = """
SELECT version, checksum, body, published_at FROM decision_versions
WHERE instance_id = $1 ORDER BY version DESC LIMIT 1
"""

# Under the instance's advisory lock (decision_store.publish); the primary key backs it up.
DECISION_INSERT_VERSION = """
INSERT INTO decision_versions (instance_id, version, scene_id, body, checksum, note)
SELECT $1, COALESCE(MAX(version), 0) + 1, $2, $3, $4, $5
FROM decision_versions WHERE instance_id = $1
RETURNING version, published_at
"""

DECISION_VERSIONS = """
SELECT version, checksum, note, published_at FROM decision_versions
WHERE instance_id = $1 ORDER BY version
"""

DECISION_VERSION_BODY = """
SELECT body FROM decision_versions WHERE instance_id = $1 AND version = $2
"""

DECISIONS_INSERT = """
INSERT INTO decisions
    (instance_id, version, strategy, grp, control, user_id, item_id, order_id, decided_at)
SELECT * FROM unnest($1::text[], $2::integer[], $3::text[], $4::text[], $5::boolean[],
                     $6::text[], $7::text[], $8::text[], $9::timestamptz[])
"""

# What a decision's user tags read: the profile's attributes and its columns.
DECISION_USER_ATTRS = """
SELECT attrs || jsonb_strip_nulls(jsonb_build_object(
    'timezone', timezone, 'email', email, 'phone', phone))
FROM users WHERE user_id = $1
"""

# The decision report: per strategy and group, the users decided since $2 (each counted once
# per group, from their first decision there), their calls, and how many did event $3
# within $4 after that first decision.
DECISION_REPORT = """
WITH decided AS (
    SELECT strategy, grp, control, user_id, min(decided_at) AS first_at, count(*) AS calls
    FROM decisions
    WHERE instance_id = $1 AND decided_at >= $2 AND user_id IS NOT NULL
    GROUP BY strategy, grp, control, user_id
)
SELECT d.strategy, d.grp, bool_or(d.control) AS control, count(*) AS users,
       sum(d.calls)::bigint AS calls,
       count(*) FILTER (WHERE $3::text IS NOT NULL AND EXISTS (
           SELECT 1 FROM events e
           WHERE e.user_id = d.user_id AND e.name = $3
             AND e.ts >= d.first_at AND e.ts < d.first_at + $4::interval)) AS converted
FROM decided d
GROUP BY d.strategy, d.grp
ORDER BY d.strategy NULLS LAST, d.grp NULLS FIRST
"""

# A check step's answers, one row per user (a page asked again keeps the first).
CHECK_ANSWERS_INSERT = """
INSERT INTO check_answers (run_id, node_id, user_id, service, outcome, answer, reason, asked_at)
SELECT $1, $2, t.user_id, $3, t.outcome, t.answer, t.reason, $4
FROM unnest($5::text[], $6::text[], $7::jsonb[], $8::text[]) AS t(user_id, outcome, answer, reason)
ON CONFLICT (run_id, node_id, user_id) DO NOTHING
"""

# Items or orders upserted from a catalog file (attributes merged into what is stored).
CATALOG_UPSERT = """
INSERT INTO catalog (kind, key, attrs)
SELECT $1, t.key, t.attrs FROM unnest($2::text[], $3::jsonb[]) AS t(key, attrs)
ON CONFLICT (kind, key) DO UPDATE
SET attrs = catalog.attrs || EXCLUDED.attrs, updated_at = now()
"""

CATALOG_ATTRS = "SELECT key, attrs FROM catalog WHERE kind = $1 AND key = ANY($2::text[])"

# --- API keys (activities/api_keys.py) ----------------------------------------------------

API_KEY_INSERT = """
INSERT INTO api_keys (key_id, name, digest, scopes, rate) VALUES ($1, $2, $3, $4, $5)
RETURNING created_at
"""

API_KEY_BY_ID = """
SELECT key_id, name, digest, scopes, rate FROM api_keys
WHERE key_id = $1 AND revoked_at IS NULL
"""

API_KEYS_LIST = """
SELECT key_id, name, scopes, rate, created_at, revoked_at FROM api_keys ORDER BY created_at
"""

API_KEY_REVOKE = """
UPDATE api_keys SET revoked_at = now() WHERE key_id = $1 AND revoked_at IS NULL RETURNING key_id
"""

API_KEYS_ACTIVE = "SELECT EXISTS (SELECT 1 FROM api_keys WHERE revoked_at IS NULL)"
