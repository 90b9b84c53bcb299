-- Migration 10: flow control.
-- Flow control (DESIGN.md section 13). A job's key, slots and expiry join the claim
-- index, so a claim still reads its candidates from jobs_due alone; a key-limited
-- queue counts the processing jobs of a key through jobs_keyed, which holds only
-- keyed processing jobs (an unkeyed job never enters it). The retry rule is the job's
-- own JSON (retry_delays, retry_on, no_retry_on), read only when an attempt fails.
-- queue_starts holds the starts of jobs in queues with a rate, numbered per queue
-- from 1: a queue's window is full when its start numbered (its latest) - rate_n + 1
-- is within the period, two lookups however high the rate.
-- Starts both out of the window and older than the last rate_n are dropped.
ALTER TABLE jobs ADD COLUMN flow_key TEXT;
ALTER TABLE jobs ADD COLUMN slots INTEGER NOT NULL DEFAULT 1;
ALTER TABLE jobs ADD COLUMN retry_rule TEXT;
ALTER TABLE jobs ADD COLUMN expires_at_ms INTEGER;
DROP INDEX jobs_due;
CREATE INDEX jobs_due ON jobs (queue, priority DESC, seq, run_at_ms, state, slots, expires_at_ms, flow_key)
    WHERE state IN ('pending', 'failed');
CREATE INDEX jobs_keyed ON jobs (queue, flow_key) WHERE state = 'processing' AND flow_key IS NOT NULL;
CREATE INDEX jobs_expiring ON jobs (expires_at_ms)
    WHERE expires_at_ms IS NOT NULL AND state IN ('waiting', 'pending', 'failed');
ALTER TABLE queues ADD COLUMN rate_n INTEGER NOT NULL DEFAULT 0;
ALTER TABLE queues ADD COLUMN rate_period_ms INTEGER NOT NULL DEFAULT 0;
ALTER TABLE queues ADD COLUMN key_limit INTEGER NOT NULL DEFAULT 0;
CREATE TABLE queue_starts (
    queue TEXT NOT NULL,
    n     INTEGER NOT NULL,
    at_ms INTEGER NOT NULL,
    PRIMARY KEY (queue, n)
) WITHOUT ROWID;
ALTER TABLE workers ADD COLUMN slots INTEGER;
