CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    prefix      TEXT NOT NULL,
    hash        TEXT NOT NULL UNIQUE,
    tenant_id   TEXT NOT NULL DEFAULT '',
    models      TEXT NOT NULL DEFAULT '', -- comma-separated allowlist; empty allows all
    expires_at  {{int}} NOT NULL DEFAULT 0, -- unix nanoseconds; 0 means never
    disabled    {{bool}} NOT NULL DEFAULT {{false}},
    created_at  {{int}} NOT NULL
);

CREATE TABLE usage_records (
    seq                 {{serial}},
    request_id          TEXT NOT NULL UNIQUE,
    key_id              TEXT NOT NULL,
    tenant_id           TEXT NOT NULL,
    endpoint            TEXT NOT NULL,
    model               TEXT NOT NULL,
    channel             TEXT NOT NULL,
    upstream_model      TEXT NOT NULL,
    stream              {{bool}} NOT NULL,
    status              INTEGER NOT NULL,
    input_tokens        {{int}} NOT NULL,
    cached_input_tokens {{int}} NOT NULL,
    cache_write_5m      {{int}} NOT NULL,
    cache_write_1h      {{int}} NOT NULL,
    output_tokens       {{int}} NOT NULL,
    reasoning_tokens    {{int}} NOT NULL,
    images              {{int}} NOT NULL,
    audio_seconds       {{int}} NOT NULL,
    characters          {{int}} NOT NULL,
    search_calls        {{int}} NOT NULL,
    source              TEXT NOT NULL,
    complete            {{bool}} NOT NULL,
    error_class         TEXT NOT NULL,
    start_ns            {{int}} NOT NULL,
    ttft_ns             {{int}} NOT NULL,
    duration_ns         {{int}} NOT NULL,
    attempts            TEXT NOT NULL,
    currency            TEXT NOT NULL,
    cost_nanos          {{int}} NOT NULL,
    price_version       TEXT NOT NULL,
    lines               TEXT NOT NULL
);
CREATE INDEX usage_records_start ON usage_records (start_ns);
CREATE INDEX usage_records_key ON usage_records (key_id, start_ns);
CREATE INDEX usage_records_model ON usage_records (model, start_ns);
