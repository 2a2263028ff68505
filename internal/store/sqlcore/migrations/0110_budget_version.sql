-- A counter bumped by every change of a budget: each ledger transaction of a
-- node sharing the database reads it first, so the node's cache of budgets
-- is never older than the transaction that uses it.
CREATE TABLE ledger_budget_version (
    id      {{int}} PRIMARY KEY,
    version {{int}} NOT NULL
){{strict}};

INSERT INTO ledger_budget_version (id, version) VALUES (1, 0);
