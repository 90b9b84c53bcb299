-- Migration 8: schedules.
-- Schedules: a job template fired on a rule. Workers read the due ones with their
-- heartbeat and fire each with a compare-and-set on next_fire_ms, in the
-- transaction that enqueues the occurrence's job, so an occurrence fires once
-- however many workers and hosts see it due.
CREATE TABLE schedules (
    name          TEXT PRIMARY KEY,
    cron          TEXT NOT NULL,
    tz            TEXT NOT NULL,
    overlap       TEXT NOT NULL,
    job           TEXT NOT NULL,
    paused        BIGINT NOT NULL DEFAULT 0,
    next_fire_ms  BIGINT NOT NULL,
    last_fire_ms  BIGINT,
    last_job_id   TEXT,
    fired         BIGINT NOT NULL DEFAULT 0,
    skipped       BIGINT NOT NULL DEFAULT 0,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);
