-- Usage records in a third of the bytes (issue 18). The strings records
-- repeat (keys, tenants, endpoints, models, channels, upstream models,
-- sources, error classes, price versions) move to a dictionary, usage_names,
-- and a record keeps their ids (0 for ""); attempts and rated lines are kept
-- in compact text from now on (records of earlier releases keep their JSON,
-- which readers read too); settled_in names the batch transfer that posted
-- a record's cost with others (ledger kind settle_batch), 0 when its own
-- transfers did. The records are copied, in seq order with their seqs, and
-- the old table dropped; the index by model, which no query used, is gone.
CREATE TABLE usage_names (
    id   {{serial}},
    name TEXT NOT NULL UNIQUE
);
INSERT INTO usage_names (name)
    SELECT key_id FROM usage_records WHERE key_id <> ''
    UNION SELECT tenant_id FROM usage_records WHERE tenant_id <> ''
    UNION SELECT endpoint FROM usage_records WHERE endpoint <> ''
    UNION SELECT model FROM usage_records WHERE model <> ''
    UNION SELECT channel FROM usage_records WHERE channel <> ''
    UNION SELECT upstream_model FROM usage_records WHERE upstream_model <> ''
    UNION SELECT source FROM usage_records WHERE source <> ''
    UNION SELECT error_class FROM usage_records WHERE error_class <> ''
    UNION SELECT price_version FROM usage_records WHERE price_version <> '';

CREATE TABLE usage_records_0800 (
    seq                 {{serial}},
    request_id          TEXT NOT NULL UNIQUE,
    key_ref             {{int}} NOT NULL,
    tenant_ref          {{int}} NOT NULL,
    endpoint_ref        {{int}} NOT NULL,
    model_ref           {{int}} NOT NULL,
    channel_ref         {{int}} NOT NULL,
    upstream_ref        {{int}} NOT NULL,
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
    source_ref          {{int}} NOT NULL,
    complete            {{bool}} NOT NULL,
    class_ref           {{int}} NOT NULL,
    start_ns            {{int}} NOT NULL,
    ttft_ns             {{int}} NOT NULL,
    duration_ns         {{int}} NOT NULL,
    attempts            TEXT NOT NULL,
    currency            TEXT NOT NULL,
    cost_nanos          {{int}} NOT NULL,
    version_ref         {{int}} NOT NULL,
    lines               TEXT NOT NULL,
    counted_input       {{int}} NOT NULL,
    settled_in          {{int}} NOT NULL
);
INSERT INTO usage_records_0800 (seq, request_id, key_ref, tenant_ref, endpoint_ref, model_ref, channel_ref, upstream_ref,
    stream, status, input_tokens, cached_input_tokens, cache_write_5m, cache_write_1h, output_tokens, reasoning_tokens,
    images, audio_seconds, characters, search_calls, source_ref, complete, class_ref, start_ns, ttft_ns, duration_ns,
    attempts, currency, cost_nanos, version_ref, lines, counted_input, settled_in)
SELECT r.seq, r.request_id,
    coalesce((SELECT n.id FROM usage_names n WHERE n.name = r.key_id), 0),
    coalesce((SELECT n.id FROM usage_names n WHERE n.name = r.tenant_id), 0),
    coalesce((SELECT n.id FROM usage_names n WHERE n.name = r.endpoint), 0),
    coalesce((SELECT n.id FROM usage_names n WHERE n.name = r.model), 0),
    coalesce((SELECT n.id FROM usage_names n WHERE n.name = r.channel), 0),
    coalesce((SELECT n.id FROM usage_names n WHERE n.name = r.upstream_model), 0),
    r.stream, r.status, r.input_tokens, r.cached_input_tokens, r.cache_write_5m, r.cache_write_1h, r.output_tokens,
    r.reasoning_tokens, r.images, r.audio_seconds, r.characters, r.search_calls,
    coalesce((SELECT n.id FROM usage_names n WHERE n.name = r.source), 0),
    r.complete,
    coalesce((SELECT n.id FROM usage_names n WHERE n.name = r.error_class), 0),
    r.start_ns, r.ttft_ns, r.duration_ns,
    CASE WHEN r.attempts = '[]' THEN '' ELSE r.attempts END, r.currency, r.cost_nanos,
    coalesce((SELECT n.id FROM usage_names n WHERE n.name = r.price_version), 0),
    CASE WHEN r.lines = '[]' THEN '' ELSE r.lines END, r.counted_input, 0
FROM usage_records r ORDER BY r.seq;
DROP TABLE usage_records;
ALTER TABLE usage_records_0800 RENAME TO usage_records;
CREATE INDEX usage_records_start ON usage_records (start_ns);
CREATE INDEX usage_records_key ON usage_records (key_ref, start_ns);
CREATE INDEX usage_records_tenant ON usage_records (tenant_ref, start_ns);
