-- The double-entry ledger (package ledger). An integer overflow is an error,
-- never a wrapped or rounded number: PostgreSQL checks bigint arithmetic, and
-- SQLite's tables are STRICT, where an overflow would otherwise
-- become a silent REAL.
CREATE TABLE ledger_tenants (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    kind         TEXT NOT NULL,
    currency     TEXT NOT NULL,
    credit_limit {{int}} NOT NULL DEFAULT 0,
    created_at   {{int}} NOT NULL
){{strict}};

CREATE TABLE ledger_accounts (
    id              TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL,
    kind            TEXT NOT NULL,
    currency        TEXT NOT NULL,
    credit_limit    {{int}} NOT NULL DEFAULT 0,
    posted_debits   {{int}} NOT NULL DEFAULT 0,
    posted_credits  {{int}} NOT NULL DEFAULT 0,
    pending_debits  {{int}} NOT NULL DEFAULT 0,
    pending_credits {{int}} NOT NULL DEFAULT 0,
    created_at      {{int}} NOT NULL
){{strict}};

CREATE TABLE ledger_transfers (
    seq            {{serial}},
    id             TEXT NOT NULL UNIQUE,
    debit_account  TEXT NOT NULL,
    credit_account TEXT NOT NULL,
    amount         {{int}} NOT NULL CHECK (amount >= 0),
    currency       TEXT NOT NULL,
    kind           TEXT NOT NULL,
    flag           TEXT NOT NULL,
    pending_id     TEXT NOT NULL DEFAULT '',
    request_id     TEXT NOT NULL DEFAULT '',
    tenant_id      TEXT NOT NULL DEFAULT '',
    note           TEXT NOT NULL DEFAULT '',
    created_at     {{int}} NOT NULL,
    CHECK (debit_account <> credit_account)
){{strict}};
-- A hold is resolved (posted or voided) at most once.
CREATE UNIQUE INDEX ledger_transfers_pending ON ledger_transfers (pending_id) WHERE pending_id <> '';
CREATE INDEX ledger_transfers_request ON ledger_transfers (request_id);
CREATE INDEX ledger_transfers_tenant ON ledger_transfers (tenant_id, created_at);

CREATE TABLE ledger_holds (
    request_id  TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    key_id      TEXT NOT NULL,
    account_id  TEXT NOT NULL,
    amount      {{int}} NOT NULL CHECK (amount >= 0),
    currency    TEXT NOT NULL,
    state       TEXT NOT NULL,
    node        TEXT NOT NULL,
    budgets     TEXT NOT NULL DEFAULT '',
    created_at  {{int}} NOT NULL,
    expires_at  {{int}} NOT NULL,
    resolved_at {{int}} NOT NULL DEFAULT 0
){{strict}};
CREATE INDEX ledger_holds_open ON ledger_holds (expires_at) WHERE state = 'pending';

CREATE TABLE ledger_idempotency (
    key        TEXT PRIMARY KEY,
    op         TEXT NOT NULL,
    body_hash  TEXT NOT NULL,
    result     TEXT NOT NULL,
    created_at {{int}} NOT NULL
){{strict}};

CREATE TABLE ledger_codes (
    hash        TEXT PRIMARY KEY,
    prefix      TEXT NOT NULL,
    amount      {{int}} NOT NULL,
    currency    TEXT NOT NULL,
    state       TEXT NOT NULL,
    tenant_id   TEXT NOT NULL DEFAULT '',
    created_at  {{int}} NOT NULL,
    expires_at  {{int}} NOT NULL DEFAULT 0,
    redeemed_at {{int}} NOT NULL DEFAULT 0
){{strict}};

-- Budgets of keys and tenants, and their spending per period.
CREATE TABLE ledger_budgets (
    scope       TEXT NOT NULL,
    subject     TEXT NOT NULL,
    period      TEXT NOT NULL,
    limit_nanos {{int}} NOT NULL,
    alerts      TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (scope, subject)
){{strict}};

CREATE TABLE ledger_budget_usage (
    scope        TEXT NOT NULL,
    subject      TEXT NOT NULL,
    period_start {{int}} NOT NULL,
    spent        {{int}} NOT NULL DEFAULT 0,
    pending      {{int}} NOT NULL DEFAULT 0,
    alerted      {{int}} NOT NULL DEFAULT 0,
    PRIMARY KEY (scope, subject, period_start)
){{strict}};

CREATE INDEX usage_records_tenant ON usage_records (tenant_id, start_ns);

-- The default tenant: keys created without a tenant belong to it. Postpaid
-- with a demo credit limit of 1,000 CNY, so a zero-config gateway answers.
INSERT INTO ledger_tenants (id, name, kind, currency, credit_limit, created_at)
    VALUES ('default', 'Default tenant', 'postpaid', 'CNY', 1000000000000, 0);
INSERT INTO ledger_accounts (id, tenant_id, kind, currency, credit_limit, created_at) VALUES
    ('tenant:default', 'default', 'postpaid', 'CNY', 1000000000000, 0),
    ('debt:default', 'default', 'debt', 'CNY', 0, 0),
    ('sys:revenue:CNY', '', 'system', 'CNY', 0, 0),
    ('sys:funding:CNY', '', 'system', 'CNY', 0, 0),
    ('sys:revenue:USD', '', 'system', 'USD', 0, 0),
    ('sys:funding:USD', '', 'system', 'USD', 0, 0);
