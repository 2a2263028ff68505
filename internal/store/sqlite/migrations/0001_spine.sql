CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    prefix      TEXT NOT NULL,
    hash        TEXT NOT NULL UNIQUE,
    tenant_id   TEXT NOT NULL DEFAULT '',
    models      TEXT NOT NULL DEFAULT '',   -- comma-separated allowlist; empty allows all
    expires_at  INTEGER NOT NULL DEFAULT 0, -- unix nanoseconds; 0 means never
    disabled    INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL
);

CREATE TABLE usage_records (
    seq                 INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id          TEXT NOT NULL UNIQUE,
    key_id              TEXT NOT NULL,
    tenant_id           TEXT NOT NULL,
    endpoint            TEXT NOT NULL,
    model               TEXT NOT NULL,
    channel             TEXT NOT NULL,
    upstream_model      TEXT NOT NULL,
    stream              INTEGER NOT NULL,
    status              INTEGER NOT NULL,
    input_tokens        INTEGER NOT NULL,
    cached_input_tokens INTEGER NOT NULL,
    cache_write_5m      INTEGER NOT NULL,
    cache_write_1h      INTEGER NOT NULL,
    output_tokens       INTEGER NOT NULL,
    reasoning_tokens    INTEGER NOT NULL,
    images              INTEGER NOT NULL,
    audio_seconds       INTEGER NOT NULL,
    characters          INTEGER NOT NULL,
    search_calls        INTEGER NOT NULL,
    source              TEXT NOT NULL,
    complete            INTEGER NOT NULL,
    error_class         TEXT NOT NULL,
    start_ns            INTEGER NOT NULL,
    ttft_ns             INTEGER NOT NULL,
    duration_ns         INTEGER NOT NULL,
    attempts            TEXT NOT NULL,
    currency            TEXT NOT NULL,
    cost_nanos          INTEGER NOT NULL,
    price_version       TEXT NOT NULL,
    lines               TEXT NOT NULL
);
CREATE INDEX usage_records_start ON usage_records (start_ns);
CREATE INDEX usage_records_key ON usage_records (key_id, start_ns);
CREATE INDEX usage_records_model ON usage_records (model, start_ns);
