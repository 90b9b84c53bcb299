-- Migration 5: cancel.
-- Cancel. A processing job that `cancel` names keeps its state and gets the time of
-- the request: its worker reads the flag with its heartbeat and kills it, and a
-- settle or rescue of a flagged attempt writes `cancelled` instead of a retry.
-- Cancelled jobs get a small index of their own on SQLite, as dead ones have, for
-- counts, listings and purge; PostgreSQL's jobs_state already serves them.
ALTER TABLE jobs ADD COLUMN cancel_requested_ms BIGINT;
