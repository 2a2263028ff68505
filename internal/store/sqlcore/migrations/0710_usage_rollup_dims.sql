-- Hour and day sums by one dimension at a time (dim: total, model, channel
-- or tenant; value: the model, channel or tenant, '' for total): UTC hours
-- under zone '', each reporting zone's days under its name. What the
-- overview and the unfiltered reports read: a few rows an hour or a day
-- whatever the traffic. shard spreads the rows of a busy day over tenants
-- (a hash of the tenant), so that writers on several nodes seldom wait for
-- the same row. And indexes for reports filtered by tenant.
CREATE TABLE usage_rollup_dim (
    zone               TEXT NOT NULL,
    dim                TEXT NOT NULL,
    start_ns           {{int}} NOT NULL,
    value              TEXT NOT NULL,
    shard              {{int}} NOT NULL,
    currency           TEXT NOT NULL,
    requests           {{int}} NOT NULL,
    errors             {{int}} NOT NULL,
    input_tokens       {{int}} NOT NULL,
    cached_tokens      {{int}} NOT NULL,
    cache_write_tokens {{int}} NOT NULL,
    output_tokens      {{int}} NOT NULL,
    reasoning_tokens   {{int}} NOT NULL,
    cost_nanos         {{int}} NOT NULL,
    duration_ns        {{int}} NOT NULL,
    ttft_sum_ns        {{int}} NOT NULL,
    ttft_h00          {{int}} NOT NULL DEFAULT 0,
    ttft_h01          {{int}} NOT NULL DEFAULT 0,
    ttft_h02          {{int}} NOT NULL DEFAULT 0,
    ttft_h03          {{int}} NOT NULL DEFAULT 0,
    ttft_h04          {{int}} NOT NULL DEFAULT 0,
    ttft_h05          {{int}} NOT NULL DEFAULT 0,
    ttft_h06          {{int}} NOT NULL DEFAULT 0,
    ttft_h07          {{int}} NOT NULL DEFAULT 0,
    ttft_h08          {{int}} NOT NULL DEFAULT 0,
    ttft_h09          {{int}} NOT NULL DEFAULT 0,
    ttft_h10          {{int}} NOT NULL DEFAULT 0,
    ttft_h11          {{int}} NOT NULL DEFAULT 0,
    ttft_h12          {{int}} NOT NULL DEFAULT 0,
    ttft_h13          {{int}} NOT NULL DEFAULT 0,
    ttft_h14          {{int}} NOT NULL DEFAULT 0,
    ttft_h15          {{int}} NOT NULL DEFAULT 0,
    ttft_h16          {{int}} NOT NULL DEFAULT 0,
    PRIMARY KEY (zone, dim, start_ns, value, shard, currency)
){{strict}};

CREATE INDEX usage_rollup_day_tenant ON usage_rollup_day (zone, tenant_id, day_ns);
CREATE INDEX usage_rollup_hour_tenant ON usage_rollup_hour (tenant_id, bucket_ns);

-- The day sums restart with this table: each zone is registered again at
-- the next start (serve), complete from the midnight after.
DELETE FROM usage_rollup_day;
DELETE FROM usage_rollup_zones;

-- The hours of the records already stored, from the hour sums (shard 0).
INSERT INTO usage_rollup_dim (zone, dim, start_ns, value, shard, currency, requests, errors, input_tokens, cached_tokens, cache_write_tokens, output_tokens, reasoning_tokens, cost_nanos, duration_ns, ttft_sum_ns, ttft_h00, ttft_h01, ttft_h02, ttft_h03, ttft_h04, ttft_h05, ttft_h06, ttft_h07, ttft_h08, ttft_h09, ttft_h10, ttft_h11, ttft_h12, ttft_h13, ttft_h14, ttft_h15, ttft_h16)
SELECT '', 'total', bucket_ns, '', 0, currency, CAST(sum(requests) AS BIGINT), CAST(sum(errors) AS BIGINT), CAST(sum(input_tokens) AS BIGINT), CAST(sum(cached_tokens) AS BIGINT), CAST(sum(cache_write_tokens) AS BIGINT), CAST(sum(output_tokens) AS BIGINT), CAST(sum(reasoning_tokens) AS BIGINT), CAST(sum(cost_nanos) AS BIGINT), CAST(sum(duration_ns) AS BIGINT), CAST(sum(ttft_sum_ns) AS BIGINT), CAST(sum(ttft_h00) AS BIGINT), CAST(sum(ttft_h01) AS BIGINT), CAST(sum(ttft_h02) AS BIGINT), CAST(sum(ttft_h03) AS BIGINT), CAST(sum(ttft_h04) AS BIGINT), CAST(sum(ttft_h05) AS BIGINT), CAST(sum(ttft_h06) AS BIGINT), CAST(sum(ttft_h07) AS BIGINT), CAST(sum(ttft_h08) AS BIGINT), CAST(sum(ttft_h09) AS BIGINT), CAST(sum(ttft_h10) AS BIGINT), CAST(sum(ttft_h11) AS BIGINT), CAST(sum(ttft_h12) AS BIGINT), CAST(sum(ttft_h13) AS BIGINT), CAST(sum(ttft_h14) AS BIGINT), CAST(sum(ttft_h15) AS BIGINT), CAST(sum(ttft_h16) AS BIGINT)
FROM usage_rollup_hour GROUP BY 3, 4, 6;
INSERT INTO usage_rollup_dim (zone, dim, start_ns, value, shard, currency, requests, errors, input_tokens, cached_tokens, cache_write_tokens, output_tokens, reasoning_tokens, cost_nanos, duration_ns, ttft_sum_ns, ttft_h00, ttft_h01, ttft_h02, ttft_h03, ttft_h04, ttft_h05, ttft_h06, ttft_h07, ttft_h08, ttft_h09, ttft_h10, ttft_h11, ttft_h12, ttft_h13, ttft_h14, ttft_h15, ttft_h16)
SELECT '', 'model', bucket_ns, model, 0, currency, CAST(sum(requests) AS BIGINT), CAST(sum(errors) AS BIGINT), CAST(sum(input_tokens) AS BIGINT), CAST(sum(cached_tokens) AS BIGINT), CAST(sum(cache_write_tokens) AS BIGINT), CAST(sum(output_tokens) AS BIGINT), CAST(sum(reasoning_tokens) AS BIGINT), CAST(sum(cost_nanos) AS BIGINT), CAST(sum(duration_ns) AS BIGINT), CAST(sum(ttft_sum_ns) AS BIGINT), CAST(sum(ttft_h00) AS BIGINT), CAST(sum(ttft_h01) AS BIGINT), CAST(sum(ttft_h02) AS BIGINT), CAST(sum(ttft_h03) AS BIGINT), CAST(sum(ttft_h04) AS BIGINT), CAST(sum(ttft_h05) AS BIGINT), CAST(sum(ttft_h06) AS BIGINT), CAST(sum(ttft_h07) AS BIGINT), CAST(sum(ttft_h08) AS BIGINT), CAST(sum(ttft_h09) AS BIGINT), CAST(sum(ttft_h10) AS BIGINT), CAST(sum(ttft_h11) AS BIGINT), CAST(sum(ttft_h12) AS BIGINT), CAST(sum(ttft_h13) AS BIGINT), CAST(sum(ttft_h14) AS BIGINT), CAST(sum(ttft_h15) AS BIGINT), CAST(sum(ttft_h16) AS BIGINT)
FROM usage_rollup_hour GROUP BY 3, 4, 6;
INSERT INTO usage_rollup_dim (zone, dim, start_ns, value, shard, currency, requests, errors, input_tokens, cached_tokens, cache_write_tokens, output_tokens, reasoning_tokens, cost_nanos, duration_ns, ttft_sum_ns, ttft_h00, ttft_h01, ttft_h02, ttft_h03, ttft_h04, ttft_h05, ttft_h06, ttft_h07, ttft_h08, ttft_h09, ttft_h10, ttft_h11, ttft_h12, ttft_h13, ttft_h14, ttft_h15, ttft_h16)
SELECT '', 'channel', bucket_ns, channel, 0, currency, CAST(sum(requests) AS BIGINT), CAST(sum(errors) AS BIGINT), CAST(sum(input_tokens) AS BIGINT), CAST(sum(cached_tokens) AS BIGINT), CAST(sum(cache_write_tokens) AS BIGINT), CAST(sum(output_tokens) AS BIGINT), CAST(sum(reasoning_tokens) AS BIGINT), CAST(sum(cost_nanos) AS BIGINT), CAST(sum(duration_ns) AS BIGINT), CAST(sum(ttft_sum_ns) AS BIGINT), CAST(sum(ttft_h00) AS BIGINT), CAST(sum(ttft_h01) AS BIGINT), CAST(sum(ttft_h02) AS BIGINT), CAST(sum(ttft_h03) AS BIGINT), CAST(sum(ttft_h04) AS BIGINT), CAST(sum(ttft_h05) AS BIGINT), CAST(sum(ttft_h06) AS BIGINT), CAST(sum(ttft_h07) AS BIGINT), CAST(sum(ttft_h08) AS BIGINT), CAST(sum(ttft_h09) AS BIGINT), CAST(sum(ttft_h10) AS BIGINT), CAST(sum(ttft_h11) AS BIGINT), CAST(sum(ttft_h12) AS BIGINT), CAST(sum(ttft_h13) AS BIGINT), CAST(sum(ttft_h14) AS BIGINT), CAST(sum(ttft_h15) AS BIGINT), CAST(sum(ttft_h16) AS BIGINT)
FROM usage_rollup_hour GROUP BY 3, 4, 6;
INSERT INTO usage_rollup_dim (zone, dim, start_ns, value, shard, currency, requests, errors, input_tokens, cached_tokens, cache_write_tokens, output_tokens, reasoning_tokens, cost_nanos, duration_ns, ttft_sum_ns, ttft_h00, ttft_h01, ttft_h02, ttft_h03, ttft_h04, ttft_h05, ttft_h06, ttft_h07, ttft_h08, ttft_h09, ttft_h10, ttft_h11, ttft_h12, ttft_h13, ttft_h14, ttft_h15, ttft_h16)
SELECT '', 'tenant', bucket_ns, CASE WHEN tenant_id = '' THEN 'default' ELSE tenant_id END, 0, currency, CAST(sum(requests) AS BIGINT), CAST(sum(errors) AS BIGINT), CAST(sum(input_tokens) AS BIGINT), CAST(sum(cached_tokens) AS BIGINT), CAST(sum(cache_write_tokens) AS BIGINT), CAST(sum(output_tokens) AS BIGINT), CAST(sum(reasoning_tokens) AS BIGINT), CAST(sum(cost_nanos) AS BIGINT), CAST(sum(duration_ns) AS BIGINT), CAST(sum(ttft_sum_ns) AS BIGINT), CAST(sum(ttft_h00) AS BIGINT), CAST(sum(ttft_h01) AS BIGINT), CAST(sum(ttft_h02) AS BIGINT), CAST(sum(ttft_h03) AS BIGINT), CAST(sum(ttft_h04) AS BIGINT), CAST(sum(ttft_h05) AS BIGINT), CAST(sum(ttft_h06) AS BIGINT), CAST(sum(ttft_h07) AS BIGINT), CAST(sum(ttft_h08) AS BIGINT), CAST(sum(ttft_h09) AS BIGINT), CAST(sum(ttft_h10) AS BIGINT), CAST(sum(ttft_h11) AS BIGINT), CAST(sum(ttft_h12) AS BIGINT), CAST(sum(ttft_h13) AS BIGINT), CAST(sum(ttft_h14) AS BIGINT), CAST(sum(ttft_h15) AS BIGINT), CAST(sum(ttft_h16) AS BIGINT)
FROM usage_rollup_hour GROUP BY 3, 4, 6;
