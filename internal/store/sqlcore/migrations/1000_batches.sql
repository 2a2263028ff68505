-- Batches (package batch): files uploaded for them and produced by them,
-- each batch with a lease (owner, lease_until) and an epoch every runner's
-- write names, and its lines: where each line's request is in its input
-- file, its state, and its result once kept. A file's content lives under
-- the data directory on a single node, or in batch_file_chunks when several
-- nodes share the database.
CREATE TABLE batch_files (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL,
    key_id     TEXT NOT NULL,
    purpose    TEXT NOT NULL,
    filename   TEXT NOT NULL,
    bytes      {{int}} NOT NULL,
    lines      {{int}} NOT NULL,
    created_at {{int}} NOT NULL,
    deleted    {{bool}} NOT NULL DEFAULT {{false}}
){{strict}};
CREATE INDEX batch_files_tenant ON batch_files (tenant_id, id);

CREATE TABLE batch_file_chunks (
    file_id TEXT NOT NULL,
    seq     {{int}} NOT NULL,
    data    {{blob}} NOT NULL,
    PRIMARY KEY (file_id, seq)
){{strict}};

CREATE TABLE batches (
    id            TEXT PRIMARY KEY,
    api           TEXT NOT NULL,
    tenant_id     TEXT NOT NULL,
    key_id        TEXT NOT NULL,
    endpoint      TEXT NOT NULL,
    input_file_id TEXT NOT NULL,
    status        TEXT NOT NULL,
    created_at    {{int}} NOT NULL,
    expires_at    {{int}} NOT NULL,
    cancelled_at  {{int}} NOT NULL DEFAULT 0,
    owner         TEXT NOT NULL DEFAULT '',
    lease_until   {{int}} NOT NULL DEFAULT 0,
    epoch         {{int}} NOT NULL DEFAULT 0,
    doc           TEXT NOT NULL
){{strict}};
CREATE INDEX batches_tenant ON batches (tenant_id, id);
CREATE INDEX batches_active ON batches (status, lease_until);

CREATE TABLE batch_lines (
    batch_id  TEXT NOT NULL,
    idx       {{int}} NOT NULL,
    custom_id TEXT NOT NULL,
    model     TEXT NOT NULL,
    state     TEXT NOT NULL,
    epoch     {{int}} NOT NULL DEFAULT 0,
    body_off  {{int}} NOT NULL,
    body_len  {{int}} NOT NULL,
    hold      {{int}} NOT NULL,
    tokens    {{int}} NOT NULL,
    status    {{int}} NOT NULL DEFAULT 0,
    cost      {{int}} NOT NULL DEFAULT 0,
    input     {{int}} NOT NULL DEFAULT 0,
    output    {{int}} NOT NULL DEFAULT 0,
    body      {{blob}},
    record    TEXT,
    PRIMARY KEY (batch_id, idx)
){{strict}};
CREATE INDEX batch_lines_state ON batch_lines (batch_id, state, idx);
