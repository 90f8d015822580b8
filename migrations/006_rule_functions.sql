-- Readers of rule values stored as JSON text, for rules compiled to SQL (journeys/rule_sql.py).
-- They read exactly what journeys/rule_eval.py reads (the patterns there and here are the
-- same) and answer NULL, never an error, for anything else: a rule never fails on data.

CREATE FUNCTION journeys_date(value text) RETURNS date
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
BEGIN
    IF value !~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}$' THEN
        RETURN NULL;
    END IF;
    RETURN value::date;
EXCEPTION WHEN others THEN
    RETURN NULL;
END $$;

-- ISO date-times: seconds and a fraction optional, "T" or a space, "Z" or an offset up to
-- 14:59; without an offset the time is UTC.
CREATE FUNCTION journeys_ts(value text) RETURNS timestamptz
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
BEGIN
    IF value !~ ('^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ]([01][0-9]|2[0-3]):[0-5][0-9]'
                 '(:[0-5][0-9](\.[0-9]{1,6})?)?(Z|[+-](0[0-9]|1[0-4]):[0-5][0-9])?$') THEN
        RETURN NULL;
    END IF;
    IF value ~ '(Z|[+-][0-9]{2}:[0-9]{2})$' THEN
        RETURN value::timestamptz;
    END IF;
    RETURN (value || '+00:00')::timestamptz;
EXCEPTION WHEN others THEN
    RETURN NULL;
END $$;
