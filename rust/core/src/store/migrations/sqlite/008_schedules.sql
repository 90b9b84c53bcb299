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
    job           TEXT NOT NULL,      -- the enqueue JSON of every occurrence's job
    paused        INTEGER NOT NULL DEFAULT 0,
    next_fire_ms  INTEGER NOT NULL,   -- the next occurrence, not yet fired
    last_fire_ms  INTEGER,            -- the occurrence last fired or skipped
    last_job_id   TEXT,
    fired         INTEGER NOT NULL DEFAULT 0,
    skipped       INTEGER NOT NULL DEFAULT 0,
    created_at_ms INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL
);
