-- Silences for every message, in the shape of Alertmanager's v2 silences:
-- matchers on a message's labels (and its channel), a start and an end.
CREATE TABLE silences (
    id          TEXT PRIMARY KEY,
    matchers    TEXT NOT NULL,
    starts_at   INTEGER NOT NULL,
    ends_at     INTEGER NOT NULL,
    created_by  TEXT NOT NULL,
    comment     TEXT NOT NULL,
    updated_at  INTEGER NOT NULL
);

-- A delivery held by a silence: state 'silenced', and which silence. It is
-- stored (visible, countable) and released when the silence is deleted early
-- with release asked for; otherwise it stays held.
ALTER TABLE deliveries ADD COLUMN silence_id TEXT;
CREATE INDEX deliveries_silenced ON deliveries (silence_id) WHERE state = 'silenced';
