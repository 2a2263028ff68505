CREATE TABLE price_versions (
    seq        {{serial}},
    id         TEXT NOT NULL UNIQUE,
    created_ns {{int}} NOT NULL,
    spec       TEXT NOT NULL
);
