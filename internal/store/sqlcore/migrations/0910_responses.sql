-- The Responses API's stored responses (package conversation): one row per
-- turn of a conversation, with the channel and upstream key that served it
-- (a follow-up must reach them), its input items and its response object
-- as JSON text. Deleted by id, by the client, or past the retention.
CREATE TABLE responses (
    id               TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL,
    key_id           TEXT NOT NULL,
    model            TEXT NOT NULL,
    channel          TEXT NOT NULL DEFAULT '',
    upstream_key     TEXT NOT NULL DEFAULT '',
    previous_id      TEXT NOT NULL DEFAULT '',
    status           TEXT NOT NULL,
    background       {{bool}} NOT NULL DEFAULT {{false}},
    request_id       TEXT NOT NULL DEFAULT '',
    input            TEXT NOT NULL,
    object           TEXT NOT NULL,
    created_ns       {{int}} NOT NULL,
    updated_ns       {{int}} NOT NULL,
    cancel_requested {{bool}} NOT NULL DEFAULT {{false}}
){{strict}};
CREATE INDEX responses_created ON responses (created_ns);
