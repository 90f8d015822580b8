-- Runs once, when the temporal-postgres volume is first initialised (docker-entrypoint-initdb.d).
-- POSTGRES_DB already created the `temporal` database; Temporal keeps visibility apart.
CREATE DATABASE temporal_visibility;
