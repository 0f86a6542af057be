-- The PostgreSQL queue: the same model as the SQLite one (see store/mod.rs),
-- shared by every gateway instance that points at this database (or schema).

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
    created_at  BIGINT NOT NULL
);
-- Unique across instances: two gateways accepting the same key race on this
-- index, and the loser answers with the winner's id.
CREATE UNIQUE INDEX messages_idem ON messages (idem_scope, idem_key) WHERE idem_key IS NOT NULL;

-- The queue: one row per message and target.
CREATE TABLE deliveries (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id    TEXT NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    target        TEXT NOT NULL,
    recipients    TEXT,
    state         TEXT NOT NULL,
    attempts      BIGINT NOT NULL DEFAULT 0,
    parts_done    BIGINT NOT NULL DEFAULT 0,
    due_at        BIGINT NOT NULL,
    lease_owner   TEXT,
    lease_until   BIGINT,
    last_outcome  TEXT,
    dead_code     TEXT,
    dead_reason   TEXT,
    dead_at       BIGINT,
    merged_into   BIGINT,
    fell_back     BOOLEAN NOT NULL DEFAULT FALSE,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);
CREATE INDEX deliveries_queue ON deliveries (state, target, due_at);
CREATE INDEX deliveries_open ON deliveries (target, due_at, id) WHERE state IN ('pending', 'claimed');
CREATE INDEX deliveries_message ON deliveries (message_id);
CREATE INDEX deliveries_merged ON deliveries (merged_into) WHERE merged_into IS NOT NULL;
CREATE INDEX deliveries_dead ON deliveries (dead_at) WHERE state = 'dead';
CREATE INDEX deliveries_owner ON deliveries (lease_owner) WHERE state = 'claimed';

-- Every request made, for the message view.
CREATE TABLE attempts (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_id  BIGINT NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    started_at   BIGINT NOT NULL,
    finished_at  BIGINT NOT NULL,
    destination  TEXT NOT NULL,
    part         BIGINT NOT NULL,
    outcome      TEXT NOT NULL,
    counted      BOOLEAN NOT NULL,
    status       BIGINT,
    code         TEXT,
    message      TEXT NOT NULL
);
CREATE INDEX attempts_delivery ON attempts (delivery_id);

-- Cluster-wide rate limiting: one row per destination (locked while a request
-- is admitted) and a log of requests that may still occupy a platform window.
-- Times here come from the database clock, the one clock all instances share.
CREATE TABLE rate_limits (
    destination    TEXT PRIMARY KEY,
    blocked_until  BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE rate_slots (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    destination  TEXT NOT NULL,
    started_at   BIGINT NOT NULL,
    -- Until when the request counts: while in flight, its start plus the send
    -- timeout (so a crashed instance's slot frees itself); once ended, its end.
    held_until   BIGINT NOT NULL
);
CREATE INDEX rate_slots_dest ON rate_slots (destination, held_until);

-- Cluster-wide access tokens: one row per credential (the SDK's cache key).
-- Holds live tokens: protect the database like the config's secrets.
CREATE TABLE access_tokens (
    cache_key   TEXT PRIMARY KEY,
    value       TEXT NOT NULL,
    fetched_at  BIGINT NOT NULL,
    refresh_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);
