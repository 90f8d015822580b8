"""The SQL audience check: PostgreSQL's grammar decides what a query is, and only one plain,
read-only SELECT calling allowed functions passes (docs/sql-audiences.md)."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest

from journeys.plan.sql_check import ALLOWED_FUNCTIONS, ALLOWED_TYPES, check_sql
from tests.journey_runner import JourneyKit

DOC = Path(__file__).resolve().parents[1] / "docs" / "sql-audiences.md"

REFUSED = [
    ("SELECT user_id FROM users WHERE 1 OPERATOR(public.===) 1", "operator public.=== is not"),
    # quoting tricks that fooled a regex: the parser sees the second statement
    (r"SELECT E'\''; DROP TABLE users; --'", "single statement, found 2 (SELECT, DROP TABLE)"),
    ("SELECT $$x$$; DELETE FROM users; --", "single statement, found 2 (SELECT, DELETE)"),
    ("SELECT $q$ ; $q$; TRUNCATE users", "found 2 (SELECT, TRUNCATE)"),
    ("SELECT 1 /* ; */ ; UPDATE users SET x = 1", "found 2 (SELECT, UPDATE)"),
    ("SELECT 1 \0; DROP TABLE users", "must not contain NUL characters"),
    (
        r"WITH a AS (SELECT E'\'') , d AS (DELETE FROM users RETURNING user_id) "
        "SELECT user_id FROM d",
        "data-modifying WITH (DELETE) is not allowed",
    ),
    (
        "WITH i AS (INSERT INTO log VALUES (1) RETURNING id) SELECT id AS user_id FROM i",
        "data-modifying WITH (INSERT)",
    ),
    (
        "SELECT user_id FROM (SELECT * FROM (WITH u AS (UPDATE users SET a = 1 "
        "RETURNING user_id) SELECT user_id FROM u) s) t",
        "data-modifying WITH (UPDATE)",
    ),
    (
        "SELECT user_id FROM users WHERE EXISTS (WITH m AS (MERGE INTO t USING s ON true "
        "WHEN MATCHED THEN DELETE RETURNING 1) SELECT 1 FROM m)",
        "data-modifying WITH (MERGE)",
    ),
    # functions off the allow list, wherever they are called
    ("SELECT user_id FROM users WHERE pg_sleep(10) IS NOT NULL", "function pg_sleep is not"),
    ("SELECT pg_sleep_for('1 hour')", "function pg_sleep_for"),
    ("SELECT lo_import('/etc/passwd')", "function lo_import"),
    ("SELECT lo_export(1, '/tmp/x')", "function lo_export"),
    ("SELECT pg_read_file('/etc/passwd')", "function pg_read_file"),
    ("SELECT pg_read_binary_file('/etc/passwd')", "function pg_read_binary_file"),
    ("SELECT pg_ls_dir('.')", "function pg_ls_dir"),
    ("SELECT set_config('x','y',false)", "function set_config"),
    ("SELECT dblink_exec('...','DROP TABLE users')", "function dblink_exec"),
    ("SELECT pg_terminate_backend(1)", "function pg_terminate_backend"),
    ("SELECT pg_cancel_backend(1)", "function pg_cancel_backend"),
    ("SELECT pg_advisory_lock(1)", "function pg_advisory_lock"),
    ("SELECT nextval('s')", "function nextval"),
    ("SELECT query_to_xml('DELETE FROM users', true, true, '')", "function query_to_xml"),
    ("SELECT generate_series(1,1e12) AS user_id", "function generate_series"),
    ("SELECT user_id FROM generate_series(1, 10) AS g(user_id)", "function generate_series"),
    ("SELECT user_id FROM users ORDER BY random() LIMIT 10", "function random"),
    ("SELECT user_id FROM users WHERE public.is_vip(user_id)", "function public.is_vip"),
    ("SELECT pg_catalog.pg_sleep(1)", "function pg_catalog.pg_sleep"),
    ('SELECT "LOWER"(email) FROM users', "function LOWER"),
    ("SELECT user_id FROM users WHERE coalesce(pg_sleep(1)::text, '') = ''", "pg_sleep"),
    # locking, SELECT INTO, other statements, other risks
    ("SELECT user_id FROM users FOR UPDATE", "FOR UPDATE is not allowed"),
    ("SELECT user_id FROM users FOR SHARE", "FOR SHARE is not allowed"),
    ("SELECT user_id FROM users FOR NO KEY UPDATE", "FOR NO KEY UPDATE is not allowed"),
    ("SELECT user_id FROM users FOR KEY SHARE SKIP LOCKED", "FOR KEY SHARE is not allowed"),
    ("SELECT * FROM (SELECT user_id FROM users FOR UPDATE) s", "FOR UPDATE is not allowed"),
    ("SELECT user_id INTO t FROM users", "SELECT INTO is not allowed"),
    ("DROP TABLE users", "must be a SELECT, found DROP TABLE"),
    ("DELETE FROM users", "must be a SELECT, found DELETE"),
    ("CREATE TABLE t AS SELECT user_id FROM users", "must be a SELECT, found CREATE TABLE AS"),
    ("EXPLAIN ANALYZE SELECT 1", "must be a SELECT, found EXPLAIN"),
    ("SET statement_timeout = 0", "must be a SELECT, found SET"),
    ("COMMIT", "must be a SELECT, found COMMIT"),
    ("SELECT x::regclass FROM t", "type regclass is not allowed"),
    ("SELECT CAST(x AS my_type) FROM t", "type my_type is not allowed"),
    ("SELECT * FROM pg_authid", "table pg_authid is not allowed"),
    ("SELECT * FROM pg_catalog.pg_shadow", "table pg_catalog.pg_shadow is not allowed"),
    ("SELECT 1 FROM information_schema.tables", "table information_schema.tables"),
    ("SELECT user_id FROM users TABLESAMPLE bernoulli (10)", "TABLESAMPLE is not allowed"),
    ("SELECT user_id FROM users WHERE user_id = $1", "parameter $1 is not allowed"),
    # not a query at all
    ("-- only a comment", "must be a single statement, found none"),
    (" ; ", "must be a single statement, found none"),
    ("SELECT FROM WHERE x", 'is not valid SQL: syntax error at or near "WHERE", at index 12'),
    ("SELECT 'open", "is not valid SQL: unterminated quoted string"),
]

ACCEPTED = [
    "select user_id from optouts;",
    "SELECT user_id FROM users -- the whole table\n;",
    "SELECT u.user_id FROM users u JOIN orders o ON o.user_id = u.user_id "
    "WHERE o.created_at > now() - interval '7 days' GROUP BY u.user_id HAVING count(*) >= 2",
    "WITH big AS (SELECT user_id, sum(total) AS spent FROM orders GROUP BY user_id) "
    "SELECT user_id FROM big WHERE spent > 100",
    "WITH RECURSIVE r(user_id) AS (SELECT 1 UNION ALL SELECT user_id + 1 FROM r "
    "WHERE user_id < 10) SELECT user_id FROM r",
    "SELECT user_id FROM a UNION SELECT user_id FROM b INTERSECT SELECT user_id FROM c "
    "EXCEPT SELECT user_id FROM d",
    "SELECT u.user_id FROM users u WHERE NOT EXISTS "
    "(SELECT 1 FROM orders o WHERE o.user_id = u.user_id AND o.status = 'cancelled')",
    "SELECT user_id FROM users WHERE profile->>'plan' = 'pro' AND (profile->'tags') ? 'vip' "
    "AND jsonb_array_length(profile->'devices') > 1",
    "SELECT user_id FROM users WHERE signup_at::date BETWEEN current_date - 30 AND current_date "
    "AND extract(dow FROM signup_at AT TIME ZONE 'Asia/Shanghai') IN (0, 6)",
    "SELECT * FROM (VALUES (1), (2), (3)) AS v(user_id)",
    "SELECT user_id FROM (SELECT user_id, row_number() OVER (PARTITION BY city "
    "ORDER BY last_seen DESC) AS n FROM users) ranked WHERE n <= 100",
    "SELECT pg_catalog.lower(email) AS e, user_id FROM users WHERE mod(user_id, 10) = 0 "
    "AND coalesce(nullif(trim(both from name), ''), 'x') <> 'x' AND greatest(a, b) > 1",
    "SELECT user_id::bigint FROM users WHERE CAST(score AS numeric(5, 2)) > 1.5 "
    "AND tags && ARRAY['a', 'b']::text[] AND cardinality(tags) > 0",
    "TABLE users",
]


@pytest.mark.parametrize(("query", "reason"), REFUSED)
def test_refused_queries_name_what_was_found(query: str, reason: str) -> None:
    with pytest.raises(ValueError) as refused:
        check_sql(query)
    message = str(refused.value)
    assert reason in message
    assert "\n" not in message  # pydantic shows it as one problem line


@pytest.mark.parametrize("query", ACCEPTED)
def test_plain_read_only_selects_pass_unchanged(query: str) -> None:
    assert check_sql(query) == query


@pytest.mark.parametrize("suffix", ["; DROP TABLE users", "; SELECT 1", ";;DELETE FROM t"])
@pytest.mark.parametrize("query", ACCEPTED)
def test_a_second_statement_after_any_accepted_query_is_refused(query: str, suffix: str) -> None:
    with pytest.raises(ValueError, match="must be a single statement, found 2"):
        check_sql(query.rstrip().removesuffix(";") + suffix)


def test_the_docs_list_every_allowed_function_and_type() -> None:
    documented = set(re.findall(r"`([a-z_0-9]+)`", DOC.read_text()))
    allowed = set().union(*ALLOWED_FUNCTIONS.values()) | ALLOWED_TYPES
    assert allowed <= documented, sorted(allowed - documented)


async def test_a_sql_audience_runs_through_the_workflow_sandbox(journey: JourneyKit) -> None:
    """The plan is validated again when workflow code reads it back, so pglast runs inside
    the sandbox: under the tests' strict worker a lazy import there fails the run."""
    tag = uuid.uuid4().hex[:8]
    users = [f"sq-{tag}-{n}" for n in range(3)]
    query = f"SELECT user_id FROM users WHERE user_id LIKE 'sq-{tag}-%' AND lower(user_id) <> ''"
    body = {
        "audience": {"source": "sql", "query": query},
        "steps": {"hello": {"type": "send", "channel": "push", "template": "hello"}},
    }
    outcome = await journey.run(body, users=None, profiles={u: {} for u in users})
    assert sorted(outcome.users) == users
    assert all(outcome.users[u].messages == ["hello"] for u in users)
