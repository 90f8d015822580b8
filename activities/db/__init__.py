"""PostgreSQL access: the pool, the migration runner and the one query module."""
