"""The embedded stack: Temporal dev server, Redis and PostgreSQL from PyPI packages."""
