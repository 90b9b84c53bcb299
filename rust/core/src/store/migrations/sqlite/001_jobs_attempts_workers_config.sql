-- Migration 1: jobs attempts workers config.
CREATE TABLE jobs (
    seq              INTEGER PRIMARY KEY,   -- enqueue order: FIFO among equal priorities
    id               TEXT NOT NULL UNIQUE,
    command          TEXT NOT NULL,
    state            TEXT NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,  -- counted toward max_retries; reset by dlq retry
    runs             INTEGER NOT NULL DEFAULT 0,  -- executions ever; keys the attempt history
    max_retries      INTEGER NOT NULL,
    priority         INTEGER NOT NULL DEFAULT 0,
    run_at_ms        INTEGER NOT NULL,
    timeout_ms       INTEGER NOT NULL,
    cwd              TEXT NOT NULL,
    created_at_ms    INTEGER NOT NULL,
    updated_at_ms    INTEGER NOT NULL,
    started_at_ms    INTEGER,
    finished_at_ms   INTEGER,
    exit_code        INTEGER,
    last_error       TEXT,
    worker_id        TEXT,
    lease_expires_ms INTEGER,
    -- A completed job's last attempt lives in this row (started_at_ms to worker_id, and
    -- this tail) rather than in attempts: one row fewer to write for every job that works.
    output_tail      TEXT
);
-- The claim walks this index in priority order and stops at the first due row; it holds
-- only runnable jobs, so finished ones (millions, eventually) never slow it down.
CREATE INDEX jobs_due ON jobs (priority DESC, seq, run_at_ms) WHERE state IN ('pending', 'failed');
-- list --state, status counts and purge.
CREATE INDEX jobs_state ON jobs (state, seq);
CREATE TABLE attempts (
    job_seq        INTEGER NOT NULL,
    run            INTEGER NOT NULL,
    attempt        INTEGER NOT NULL,
    worker_id      TEXT,
    started_at_ms  INTEGER,
    finished_at_ms INTEGER NOT NULL,
    exit_code      INTEGER,
    error          TEXT,
    outcome        TEXT NOT NULL,
    output_tail    TEXT NOT NULL,
    -- Clustered by job: one b-tree, and a job's history is one range.
    PRIMARY KEY (job_seq, run)
) WITHOUT ROWID;
CREATE TABLE workers (
    id             TEXT PRIMARY KEY,
    host           TEXT NOT NULL,
    pid            INTEGER NOT NULL,
    state          TEXT NOT NULL,  -- running or exited; idle/busy come from its processing job
    started_at_ms  INTEGER NOT NULL,
    heartbeat_ms   INTEGER NOT NULL,
    lease_ms       INTEGER NOT NULL,
    stop_requested INTEGER NOT NULL DEFAULT 0,
    exited_at_ms   INTEGER
);
CREATE TABLE config (
    key           TEXT PRIMARY KEY,
    value         TEXT NOT NULL,
    updated_at_ms INTEGER NOT NULL
);
