-- The web console's sessions and audit trail, in the store so every
-- instance on one PostgreSQL database knows every login, and a logout on one
-- ends it on all.
--
-- A session is found by the SHA-256 (hex) of its cookie's value: the value
-- itself is never stored, so reading this table does not give a login. Who
-- it is (a user's name, or the SHA-256 of the API key that logged in) is
-- resolved against the config in force on every request, so a user or key
-- removed by a reload ends its sessions and a changed scope applies at once;
-- no scope is stored.
CREATE TABLE console_sessions (
    digest     TEXT PRIMARY KEY,       -- SHA-256 (hex) of the cookie's value
    kind       TEXT NOT NULL,          -- 'user' or 'key'
    subject    TEXT NOT NULL,          -- the user's name, or the SHA-256 (hex) of the key
    name       TEXT NOT NULL,          -- who, as shown (the user's or the key's name)
    csrf       TEXT NOT NULL,          -- the token every form of the session carries
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,       -- checked on every read; retention deletes it after
    last_seen  BIGINT NOT NULL
);
CREATE INDEX console_sessions_expires ON console_sessions (expires_at);

-- Every console action (logins too), newest read first; never a secret.
-- Retention deletes rows older than `[console] audit_keep`.
CREATE TABLE console_audit (
    id        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at        BIGINT NOT NULL,
    user_name TEXT NOT NULL,           -- as given at a failed login
    action    TEXT NOT NULL,           -- login, logout, dlq.replay, silence.create, ...
    object    TEXT NOT NULL,           -- what it acted on ('' when nothing)
    outcome   TEXT NOT NULL,           -- ok, refused, or why it failed
    source    TEXT                     -- the client's address, when known
);
CREATE INDEX console_audit_at ON console_audit (at);
