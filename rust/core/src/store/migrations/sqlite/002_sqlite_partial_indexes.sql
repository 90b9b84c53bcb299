-- Migration 2: sqlite partial indexes.
-- Every job changes state twice per attempt, and each change moved two entries of
-- jobs_state (in three places of the index for a settle+claim). Small partial indexes
-- instead: completed jobs, most of the table, are in none and are counted as the rest.
DROP INDEX jobs_state;
-- Heartbeats, lease rescue, worker list, list --state processing.
CREATE INDEX jobs_processing ON jobs (worker_id) WHERE state = 'processing';
-- The DLQ: list, count, retry, purge.
CREATE INDEX jobs_dead ON jobs (seq) WHERE state = 'dead';
-- The narrowest index of every job, on a column that never changes after enqueue: status
-- counts all jobs by counting its cells (a third of the pages of the id index).
CREATE INDEX jobs_all ON jobs (max_retries);
