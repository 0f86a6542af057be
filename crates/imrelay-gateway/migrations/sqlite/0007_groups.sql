-- Grouping and dedup (a channel's `group`): messages with the same values
-- of the group's labels on a channel form one group. A message accepted
-- while its group is open is stored with its deliveries 'merged' and the
-- group's id (visible, counted, never lost) instead of being sent; the group
-- is sent as one notification when due_at comes. Every fold and every send
-- moves version on, and a send is a compare-and-set on the version it read,
-- in the transaction that queues the notification and points the folded
-- deliveries at it: two instances or a restart never send one group twice.
CREATE TABLE message_groups (
    id            TEXT PRIMARY KEY,      -- hash of the channel and the labels' values
    channel       TEXT NOT NULL,
    labels        TEXT NOT NULL,         -- the grouping labels and their values (JSON)
    version       INTEGER NOT NULL,      -- +1 at every fold and every send
    pending       INTEGER NOT NULL,      -- messages folded since the last send
    pending_since INTEGER,               -- when the first of them came
    total         INTEGER NOT NULL,      -- every message the group ever took
    due_at        INTEGER,               -- when it is sent (NULL: nothing to send)
    latest        TEXT,                  -- the newest message folded
    latest_hash   TEXT,                  -- its content's hash
    sent_at       INTEGER,               -- the last send
    sent_hash     TEXT,                  -- the content then
    sent_message  TEXT,                  -- the notification then
    sends         INTEGER NOT NULL,      -- notifications sent
    repeat_ms     INTEGER NOT NULL,      -- the channel's `repeat` at the last fold: after
                                         -- that long without a fold the group starts anew,
                                         -- so retention may forget it
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);
CREATE INDEX message_groups_due ON message_groups (due_at) WHERE due_at IS NOT NULL;

-- The group a delivery was folded into; merged_into is set when the group is sent.
ALTER TABLE deliveries ADD COLUMN group_id TEXT;
CREATE INDEX deliveries_grouped ON deliveries (group_id) WHERE group_id IS NOT NULL;
