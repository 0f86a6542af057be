-- Messages as producers sent them (neutral JSON), rendered only at dispatch.
CREATE TABLE messages (
    id          TEXT PRIMARY KEY,
    channel     TEXT NOT NULL,
    kind        TEXT NOT NULL DEFAULT 'normal',
    body        TEXT NOT NULL,
    trace_id    TEXT,
    origin      TEXT,
    idem_scope  TEXT,
    idem_key    TEXT,
    body_hash   TEXT,
    created_at  INTEGER NOT NULL
);
CREATE UNIQUE INDEX messages_idem ON messages (idem_scope, idem_key) WHERE idem_key IS NOT NULL;

-- The queue: one row per message and target.
CREATE TABLE deliveries (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id    TEXT NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    target        TEXT NOT NULL,
    recipients    TEXT,
    state         TEXT NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    parts_done    INTEGER NOT NULL DEFAULT 0,
    due_at        INTEGER NOT NULL,
    lease_owner   TEXT,
    lease_until   INTEGER,
    last_outcome  TEXT,
    dead_code     TEXT,
    dead_reason   TEXT,
    dead_at       INTEGER,
    merged_into   INTEGER,
    fell_back     INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);
CREATE INDEX deliveries_queue ON deliveries (state, target, due_at);
CREATE INDEX deliveries_message ON deliveries (message_id);
CREATE INDEX deliveries_merged ON deliveries (merged_into) WHERE merged_into IS NOT NULL;
CREATE INDEX deliveries_dead ON deliveries (dead_at) WHERE state = 'dead';

-- Every request made, for the message view.
CREATE TABLE attempts (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery_id  INTEGER NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    started_at   INTEGER NOT NULL,
    finished_at  INTEGER NOT NULL,
    destination  TEXT NOT NULL,
    part         INTEGER NOT NULL,
    outcome      TEXT NOT NULL,
    counted      INTEGER NOT NULL,
    status       INTEGER,
    code         TEXT,
    message      TEXT NOT NULL
);
CREATE INDEX attempts_delivery ON attempts (delivery_id);
