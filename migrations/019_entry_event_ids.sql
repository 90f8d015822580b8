-- An entry event routed twice (the ingest API crashed after signalling, before marking it
-- routed, and the sender retried) must enter its user once: admission looks its id up here.
CREATE INDEX journey_entries_event ON journey_entries (run_id, event_id)
    WHERE event_id IS NOT NULL;
