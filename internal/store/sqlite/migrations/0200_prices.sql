CREATE TABLE price_versions (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    id         TEXT NOT NULL UNIQUE,
    created_ns INTEGER NOT NULL,
    spec       TEXT NOT NULL
);
