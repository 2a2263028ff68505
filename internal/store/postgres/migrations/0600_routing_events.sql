-- The log of routing events (parks, unparks, channel resets) that gateway
-- nodes sharing the database replicate; see route.Replicator. Writers take a
-- table lock so that seqs become visible in order (postgres/routing.go).
CREATE TABLE routing_events (
    seq     BIGSERIAL PRIMARY KEY,
    kind    TEXT NOT NULL,
    channel TEXT NOT NULL,
    key_id  TEXT NOT NULL DEFAULT '',
    reason  TEXT NOT NULL DEFAULT '',
    node    TEXT NOT NULL,
    at_ns   BIGINT NOT NULL
);
CREATE INDEX routing_events_at ON routing_events (at_ns);
