-- The log of routing events (parks, unparks, channel resets) that gateway
-- nodes sharing a store replicate; see route.Replicator. SQLite's
-- AUTOINCREMENT keeps a seq from being reused after pruning has deleted the
-- highest one; PostgreSQL's writers take a table lock so that seqs become
-- visible in order (postgres/routing.go).
CREATE TABLE routing_events (
    seq     {{serial}},
    kind    TEXT NOT NULL,
    channel TEXT NOT NULL,
    key_id  TEXT NOT NULL DEFAULT '',
    reason  TEXT NOT NULL DEFAULT '',
    node    TEXT NOT NULL,
    at_ns   {{int}} NOT NULL
);
CREATE INDEX routing_events_at ON routing_events (at_ns);
