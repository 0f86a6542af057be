-- Escalations: a message whose route or request names a policy walks the
-- policy's steps until someone acknowledges it or its alert resolves. A step
-- is fired by moving next_step on from the value the firer read, in the same
-- transaction that queues its notifications: a second instance or a restart
-- cannot fire it again, and nothing is fired without its messages.
CREATE TABLE escalations (
    id          TEXT PRIMARY KEY,          -- the message that started it
    root        TEXT NOT NULL,             -- its thread's first message (itself when unthreaded)
    channel     TEXT NOT NULL,
    policy      TEXT NOT NULL,
    state       TEXT NOT NULL,             -- active, acknowledged, resolved, completed
    next_step   BIGINT NOT NULL,          -- steps fired so far, counting repeats
    due_at      BIGINT NOT NULL,          -- when the next step fires
    started_at  BIGINT NOT NULL,
    ended_at    BIGINT,
    ended_by    TEXT,
    updated_at  BIGINT NOT NULL
);
-- One active escalation per thread: a thread's later messages do not start another.
CREATE UNIQUE INDEX escalations_one_active ON escalations (root) WHERE state = 'active';
CREATE INDEX escalations_due ON escalations (due_at) WHERE state = 'active';

-- Every step fired: what it notified and the messages it queued (JSON).
CREATE TABLE escalation_steps (
    escalation_id TEXT NOT NULL,
    step          BIGINT NOT NULL,
    fired_at      BIGINT NOT NULL,
    detail        TEXT NOT NULL,
    PRIMARY KEY (escalation_id, step)
);

-- Temporary on-call overrides made over the API; they win over the schedule's layers.
CREATE TABLE oncall_overrides (
    id          TEXT PRIMARY KEY,
    schedule    TEXT NOT NULL,
    person      TEXT NOT NULL,
    starts_at   BIGINT NOT NULL,
    ends_at     BIGINT NOT NULL,
    created_by  TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX oncall_overrides_schedule ON oncall_overrides (schedule, ends_at);
