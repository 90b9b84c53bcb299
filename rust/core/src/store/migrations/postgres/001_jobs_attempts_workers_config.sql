-- Migration 1: jobs attempts workers config.
CREATE TABLE jobs (
    seq              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id               TEXT NOT NULL UNIQUE,
    command          TEXT NOT NULL,
    state            TEXT NOT NULL,
    attempts         BIGINT NOT NULL DEFAULT 0,
    runs             BIGINT NOT NULL DEFAULT 0,
    max_retries      BIGINT NOT NULL,
    priority         BIGINT NOT NULL DEFAULT 0,
    run_at_ms        BIGINT NOT NULL,
    timeout_ms       BIGINT NOT NULL,
    cwd              TEXT NOT NULL,
    created_at_ms    BIGINT NOT NULL,
    updated_at_ms    BIGINT NOT NULL,
    started_at_ms    BIGINT,
    finished_at_ms   BIGINT,
    exit_code        INTEGER,
    last_error       TEXT,
    worker_id        TEXT,
    lease_expires_ms BIGINT,
    output_tail      TEXT
);
CREATE INDEX jobs_due ON jobs (priority DESC, seq, run_at_ms) WHERE state IN ('pending', 'failed');
CREATE INDEX jobs_state ON jobs (state, seq);
CREATE INDEX jobs_processing ON jobs (worker_id) WHERE state = 'processing';
CREATE TABLE attempts (
    job_seq        BIGINT NOT NULL,
    run            BIGINT NOT NULL,
    attempt        BIGINT NOT NULL,
    worker_id      TEXT,
    started_at_ms  BIGINT,
    finished_at_ms BIGINT NOT NULL,
    exit_code      INTEGER,
    error          TEXT,
    outcome        TEXT NOT NULL,
    output_tail    TEXT NOT NULL,
    PRIMARY KEY (job_seq, run)
);
CREATE TABLE workers (
    id             TEXT PRIMARY KEY,
    host           TEXT NOT NULL,
    pid            BIGINT NOT NULL,
    state          TEXT NOT NULL,
    started_at_ms  BIGINT NOT NULL,
    heartbeat_ms   BIGINT NOT NULL,
    lease_ms       BIGINT NOT NULL,
    stop_requested SMALLINT NOT NULL DEFAULT 0,
    exited_at_ms   BIGINT
);
CREATE TABLE config (
    key           TEXT PRIMARY KEY,
    value         TEXT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);
