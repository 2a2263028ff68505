-- Tenant users who sign in to the web console with a name and a password
-- (keys.Login); the password is kept as a salted PBKDF2 hash.
CREATE TABLE console_logins (
    name       TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL,
    hash       TEXT NOT NULL,
    created_at {{int}} NOT NULL
){{strict}};
CREATE INDEX console_logins_tenant ON console_logins (tenant_id, name);
