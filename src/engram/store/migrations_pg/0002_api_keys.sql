-- API keys for `engram serve`: only a salted SHA-256 of each secret is stored.
-- Mirrors store/migrations/0002_api_keys.sql with PostgreSQL types; `namespaces` is the JSON
-- text of the key's namespace patterns (as in SQLite), times are seconds since the epoch.
CREATE TABLE api_keys (
    id            text PRIMARY KEY,
    name          text NOT NULL DEFAULT '',
    salt          text NOT NULL,
    hash          text NOT NULL,
    scope         text NOT NULL CHECK (scope IN ('read', 'write', 'admin')),
    namespaces    text NOT NULL,
    created_at    double precision NOT NULL,
    last_used_at  double precision,
    revoked_at    double precision
);
