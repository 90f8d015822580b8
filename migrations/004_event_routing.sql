-- When an accepted event was handed to the running journeys that listen for it. A retried
-- POST finds its events stored: the routed ones are not routed again, the rest are.
ALTER TABLE events ADD COLUMN routed_at timestamptz;
