-- The date readers of migration 006 caught cast errors in plpgsql EXCEPTION blocks, which
-- start a subtransaction: such a function is not parallel safe, though it said so, and a
-- parallel plan over it failed ("cannot start subtransactions during a parallel operation").
-- The same readers without exceptions: pg_input_is_valid (PostgreSQL 16) tests the cast
-- first. Plain SQL functions, so the planner can inline them. They read exactly what they
-- read before (and what journeys/rule_eval.py reads), and answer NULL for anything else.

CREATE OR REPLACE FUNCTION journeys_date(value text) RETURNS date
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN value ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}$' AND pg_input_is_valid(value, 'date')
        THEN value::date END
$$;

CREATE OR REPLACE FUNCTION journeys_ts(value text) RETURNS timestamptz
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN value !~ ('^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ]([01][0-9]|2[0-3]):[0-5][0-9]'
                       '(:[0-5][0-9](\.[0-9]{1,6})?)?(Z|[+-](0[0-9]|1[0-4]):[0-5][0-9])?$')
            THEN NULL
        WHEN value ~ '(Z|[+-][0-9]{2}:[0-9]{2})$'
            THEN CASE WHEN pg_input_is_valid(value, 'timestamptz') THEN value::timestamptz END
        ELSE CASE WHEN pg_input_is_valid(value || '+00:00', 'timestamptz')
            THEN (value || '+00:00')::timestamptz END
    END
$$;

-- Segments count a behaviour over every user at once (journeys/rule_sql.py groups the
-- events of one name inside a window by user): this index serves that scan from the index
-- alone, where events_user_name_ts serves one user's events.
CREATE INDEX IF NOT EXISTS events_name_ts_user ON events (name, ts) INCLUDE (user_id);
