-- The life of a message after it is sent (threads, updates, recalls,
-- acknowledgements) and the labels sources attach to it.

-- `thread`: the key messages of one conversation share (Alertmanager's
-- groupKey); `thread_root`: the first message of the thread on its channel,
-- whose card later messages update; `thread_seq`: the order they were
-- accepted in, so a stale update never overwrites a newer one.
ALTER TABLE messages ADD COLUMN thread TEXT;
ALTER TABLE messages ADD COLUMN thread_root TEXT;
ALTER TABLE messages ADD COLUMN thread_seq BIGINT;
-- A JSON object of string labels (Alertmanager's group labels, API labels).
ALTER TABLE messages ADD COLUMN labels TEXT;
-- Where a silence for this message is created (an Alertmanager's base URL).
ALTER TABLE messages ADD COLUMN silence_url TEXT;
-- What produced it (`alertmanager/prod`), so a click on its card finds the
-- route's rules (who may act on it) in the config current then.
ALTER TABLE messages ADD COLUMN source TEXT;
CREATE INDEX messages_thread_root ON messages (thread_root, thread_seq) WHERE thread_root IS NOT NULL;

-- One row per thread and channel: who started it and the last sequence given.
CREATE TABLE threads (
    channel     TEXT NOT NULL,
    thread      TEXT NOT NULL,
    root        TEXT NOT NULL,
    seq         BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (channel, thread)
);

-- What the platform called each delivered part, to update or recall it later.
ALTER TABLE attempts ADD COLUMN platform_message_id TEXT;
ALTER TABLE attempts ADD COLUMN update_token TEXT;
-- The recipients the request addressed (app destinations), as the platform
-- needs them again to update the part (WeCom derives the card's task id).
ALTER TABLE attempts ADD COLUMN recipients TEXT;

-- Acknowledgements, silences and resolutions people made, from the chat or the API.
CREATE TABLE acks (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    root        TEXT NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    action      TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    user_name   TEXT,
    source      TEXT NOT NULL,
    detail      TEXT,
    at          BIGINT NOT NULL
);
CREATE INDEX acks_root ON acks (root);

-- One update of a thread's card at a time per destination, across instances:
-- a lease on (root, target) held while the update is sent, so a slow older
-- update cannot land after a newer one.
CREATE TABLE thread_locks (
    root    TEXT NOT NULL,
    target  TEXT NOT NULL,
    owner   TEXT NOT NULL,
    until   BIGINT NOT NULL,
    PRIMARY KEY (root, target)
);
