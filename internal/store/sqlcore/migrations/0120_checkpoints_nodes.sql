-- What a request in flight has delivered so far (the JSON of its usage
-- record as it stood), written onto its hold from time to time, so that a
-- hold its node left behind is settled at what was delivered.
ALTER TABLE ledger_holds ADD COLUMN checkpoint TEXT NOT NULL DEFAULT '';

-- When each gateway node sharing the database was last alive: the others
-- resolve the pending holds of a node not seen for longer than the node
-- timeout.
CREATE TABLE ledger_nodes (
    node    TEXT PRIMARY KEY,
    seen_at {{int}} NOT NULL
){{strict}};
