-- bench/run's pgbench reference: a table shaped like imrelay's `messages`
-- (crates/imrelay-gateway/migrations/postgres), created in the benchmark's
-- schema (bench/run sets search_path to the schema PG_URL names).
CREATE TABLE pgbench_messages (
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
CREATE UNIQUE INDEX pgbench_messages_idem ON pgbench_messages (idem_scope, idem_key) WHERE idem_key IS NOT NULL;
