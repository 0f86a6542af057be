-- One row the readiness probe rewrites: a write through the same path as an
-- accept proves the store can commit (reads succeed on a full disk).
CREATE TABLE store_probe (
    id  BIGINT PRIMARY KEY,
    at  BIGINT NOT NULL
);

-- Retention walks delivered deliveries by the time they were delivered (dead
-- ones have deliveries_dead); only settled rows are in it, so accepts do not
-- pay for it.
CREATE INDEX deliveries_done ON deliveries (updated_at) WHERE state = 'done';
