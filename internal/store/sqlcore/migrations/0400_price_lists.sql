CREATE TABLE tenant_price_lists (
    tenant_id  TEXT PRIMARY KEY,
    spec       TEXT NOT NULL,
    updated_ns {{int}} NOT NULL
);
