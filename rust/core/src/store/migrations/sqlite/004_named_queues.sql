-- Migration 4: named queues.
-- Named queues. The claim index leads with the queue: a claim probes each queue
-- it may take from at its most urgent due job, so a paused or full queue with a
-- million jobs costs nothing to skip. State ends the index so counts by queue and
-- state read it alone. A limited queue counts its processing jobs through
-- jobs_processing (a handful of rows, one per busy worker): an index on the queue of
-- processing jobs cost every claim and settle about 10 % for what only limits use.
-- queues holds a row for every queue that has had jobs or settings.
ALTER TABLE jobs ADD COLUMN queue TEXT NOT NULL DEFAULT 'default';
DROP INDEX jobs_due;
CREATE INDEX jobs_due ON jobs (queue, priority DESC, seq, run_at_ms, state) WHERE state IN ('pending', 'failed');
DROP INDEX jobs_all;
CREATE INDEX jobs_all ON jobs (queue);
CREATE TABLE queues (
    name          TEXT PRIMARY KEY,
    paused        INTEGER NOT NULL DEFAULT 0,
    max_running   INTEGER NOT NULL DEFAULT 0,  -- 0: no limit
    updated_at_ms INTEGER NOT NULL
);
INSERT INTO queues (name, updated_at_ms) SELECT DISTINCT queue, 0 FROM jobs;
ALTER TABLE workers ADD COLUMN queues TEXT;  -- the queues it serves, comma-separated; NULL: every queue
