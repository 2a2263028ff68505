CREATE TABLE price_versions (
    seq        BIGSERIAL PRIMARY KEY,
    id         TEXT NOT NULL UNIQUE,
    created_ns BIGINT NOT NULL,
    spec       TEXT NOT NULL
);
