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
-- Each distinct combination of the strings once (one scan of the records),
-- their names, and the ids of each combination: the copy below then looks
-- one combination up per record instead of nine names.
CREATE TABLE usage_tuples_0800 AS SELECT DISTINCT key_id, tenant_id, endpoint, model, channel, upstream_model, source,
    error_class, price_version FROM usage_records;
INSERT INTO usage_names (name)
    SELECT key_id FROM usage_tuples_0800 WHERE key_id <> ''
    UNION SELECT tenant_id FROM usage_tuples_0800 WHERE tenant_id <> ''
    UNION SELECT endpoint FROM usage_tuples_0800 WHERE endpoint <> ''
    UNION SELECT model FROM usage_tuples_0800 WHERE model <> ''
    UNION SELECT channel FROM usage_tuples_0800 WHERE channel <> ''
    UNION SELECT upstream_model FROM usage_tuples_0800 WHERE upstream_model <> ''
    UNION SELECT source FROM usage_tuples_0800 WHERE source <> ''
    UNION SELECT error_class FROM usage_tuples_0800 WHERE error_class <> ''
    UNION SELECT price_version FROM usage_tuples_0800 WHERE price_version <> '';
CREATE TABLE usage_refs_0800 AS SELECT t.*,
    coalesce((SELECT n.id FROM usage_names n WHERE n.name = t.key_id), 0) AS key_ref,
    coalesce((SELECT n.id FROM usage_names n WHERE n.name = t.tenant_id), 0) AS tenant_ref,
    coalesce((SELECT n.id FROM usage_names n WHERE n.name = t.endpoint), 0) AS endpoint_ref,
    coalesce((SELECT n.id FROM usage_names n WHERE n.name = t.model), 0) AS model_ref,
    coalesce((SELECT n.id FROM usage_names n WHERE n.name = t.channel), 0) AS channel_ref,
    coalesce((SELECT n.id FROM usage_names n WHERE n.name = t.upstream_model), 0) AS upstream_ref,
    coalesce((SELECT n.id FROM usage_names n WHERE n.name = t.source), 0) AS source_ref,
    coalesce((SELECT n.id FROM usage_names n WHERE n.name = t.error_class), 0) AS class_ref,
    coalesce((SELECT n.id FROM usage_names n WHERE n.name = t.price_version), 0) AS version_ref
    FROM usage_tuples_0800 t;
CREATE UNIQUE INDEX usage_refs_0800_strings ON usage_refs_0800 (key_id, tenant_id, endpoint, model, channel,
    upstream_model, source, error_class, price_version);

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
SELECT r.seq, r.request_id, x.key_ref, x.tenant_ref, x.endpoint_ref, x.model_ref, x.channel_ref, x.upstream_ref,
    r.stream, r.status, r.input_tokens, r.cached_input_tokens, r.cache_write_5m, r.cache_write_1h, r.output_tokens,
    r.reasoning_tokens, r.images, r.audio_seconds, r.characters, r.search_calls, x.source_ref, r.complete, x.class_ref,
    r.start_ns, r.ttft_ns, r.duration_ns, CASE WHEN r.attempts = '[]' THEN '' ELSE r.attempts END, r.currency,
    r.cost_nanos, x.version_ref, CASE WHEN r.lines = '[]' THEN '' ELSE r.lines END, r.counted_input, 0
-- CROSS JOIN keeps the records the outer loop in SQLite (in seq order, each
-- finding its combination by the index); PostgreSQL plans it as any join.
FROM usage_records r CROSS JOIN usage_refs_0800 x
WHERE x.key_id = r.key_id AND x.tenant_id = r.tenant_id AND x.endpoint = r.endpoint AND x.model = r.model
    AND x.channel = r.channel AND x.upstream_model = r.upstream_model AND x.source = r.source
    AND x.error_class = r.error_class AND x.price_version = r.price_version
ORDER BY r.seq;
DROP TABLE usage_records;
DROP TABLE usage_refs_0800;
DROP TABLE usage_tuples_0800;
ALTER TABLE usage_records_0800 RENAME TO usage_records;
CREATE INDEX usage_records_start ON usage_records (start_ns);
CREATE INDEX usage_records_key ON usage_records (key_ref, start_ns);
CREATE INDEX usage_records_tenant ON usage_records (tenant_ref, start_ns);
