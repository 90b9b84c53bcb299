-- Migration 2: sqlite partial indexes.
-- PostgreSQL had jobs_processing from the start and keeps jobs_state: its planner
-- uses it for counts and purge, and its index updates are cheap (HOT updates do not
-- touch it unless the state changes). Version 2 only brings it level with SQLite.
SELECT 1;
