-- SQL audiences run as journeys_reader: it can read users and events and nothing else, so a
-- query that gets past the grammar check (journeys/plan/sql_check.py) still cannot write,
-- whatever it calls. Without the privilege to create it here, a DBA creates it
-- (docs/deployment.md); until then SQL audiences are refused, never run as the app's role.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'journeys_reader') THEN
        CREATE ROLE journeys_reader NOLOGIN NOINHERIT;
    END IF;
    GRANT USAGE ON SCHEMA public TO journeys_reader;
    GRANT SELECT ON users, events TO journeys_reader;
    GRANT journeys_reader TO CURRENT_USER;
EXCEPTION WHEN insufficient_privilege THEN
    RAISE NOTICE 'journeys_reader could not be set up here; SQL audiences are refused until it is';
END $$;
