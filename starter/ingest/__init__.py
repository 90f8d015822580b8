"""The ingest path: events from product services into PostgreSQL and running journeys."""
