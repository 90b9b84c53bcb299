-- Migration 6: unique keys.
-- Unique jobs: at most one unfinished job per key, kept by a unique partial index
-- that holds only keyed jobs in those states (a job without a key is in it never,
-- a finished one leaves it), so enqueues from any number of processes and hosts
-- add exactly one. ('waiting' is the state dependencies will add.)
ALTER TABLE jobs ADD COLUMN unique_key TEXT;
CREATE UNIQUE INDEX jobs_unique ON jobs (unique_key)
    WHERE unique_key IS NOT NULL AND state IN ('waiting', 'pending', 'processing', 'failed');
