CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    prefix      TEXT NOT NULL,
    hash        TEXT NOT NULL UNIQUE,
    tenant_id   TEXT NOT NULL DEFAULT '',
    models      TEXT NOT NULL DEFAULT '',
    expires_at  BIGINT NOT NULL DEFAULT 0,
    disabled    BOOLEAN NOT NULL DEFAULT false,
    created_at  BIGINT NOT NULL
);

CREATE TABLE usage_records (
    seq                 BIGSERIAL PRIMARY KEY,
    request_id          TEXT NOT NULL UNIQUE,
    key_id              TEXT NOT NULL,
    tenant_id           TEXT NOT NULL,
    endpoint            TEXT NOT NULL,
    model               TEXT NOT NULL,
    channel             TEXT NOT NULL,
    upstream_model      TEXT NOT NULL,
    stream              BOOLEAN NOT NULL,
    status              INTEGER NOT NULL,
    input_tokens        BIGINT NOT NULL,
    cached_input_tokens BIGINT NOT NULL,
    cache_write_5m      BIGINT NOT NULL,
    cache_write_1h      BIGINT NOT NULL,
    output_tokens       BIGINT NOT NULL,
    reasoning_tokens    BIGINT NOT NULL,
    images              BIGINT NOT NULL,
    audio_seconds       BIGINT NOT NULL,
    characters          BIGINT NOT NULL,
    search_calls        BIGINT NOT NULL,
    source              TEXT NOT NULL,
    complete            BOOLEAN NOT NULL,
    error_class         TEXT NOT NULL,
    start_ns            BIGINT NOT NULL,
    ttft_ns             BIGINT NOT NULL,
    duration_ns         BIGINT NOT NULL,
    attempts            TEXT NOT NULL,
    currency            TEXT NOT NULL,
    cost_nanos          BIGINT NOT NULL,
    price_version       TEXT NOT NULL,
    lines               TEXT NOT NULL
);
CREATE INDEX usage_records_start ON usage_records (start_ns);
CREATE INDEX usage_records_key ON usage_records (key_id, start_ns);
CREATE INDEX usage_records_model ON usage_records (model, start_ns);
