-- The log of routing events (parks, unparks, channel resets) that gateway
-- nodes sharing a store replicate; see route.Replicator. AUTOINCREMENT keeps
-- a seq from being reused after pruning has deleted the highest one.
CREATE TABLE routing_events (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    kind    TEXT NOT NULL,
    channel TEXT NOT NULL,
    key_id  TEXT NOT NULL DEFAULT '',
    reason  TEXT NOT NULL DEFAULT '',
    node    TEXT NOT NULL,
    at_ns   INTEGER NOT NULL
);
CREATE INDEX routing_events_at ON routing_events (at_ns);
