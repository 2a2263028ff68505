-- Upstream channels added at run time (package channels): each a JSON spec,
-- its upstream keys included (they are never shown again; the admin API
-- answers only how many there are). Nodes reload them when the list changes.
CREATE TABLE channels (
    name       TEXT PRIMARY KEY,
    spec       TEXT NOT NULL,
    updated_ns {{int}} NOT NULL
){{strict}};
