-- Migration 7: dependencies.
-- Dependencies. A job enqueued with `after` is `waiting` (in no claim index) while
-- `waiting_on` of the jobs it names have not completed; the settle that completes a
-- parent counts its dependents down in the same transaction, and the last one makes
-- a dependent pending. `has_dependents` is set on a job once another names it, so a
-- settle learns from its own RETURNING whether there is anything to do: a job
-- nobody runs after pays nothing. job_deps holds the edges both ways round.
ALTER TABLE jobs ADD COLUMN waiting_on BIGINT NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN has_dependents BIGINT;
CREATE TABLE job_deps (
    parent_seq BIGINT NOT NULL,
    child_seq  BIGINT NOT NULL,
    PRIMARY KEY (parent_seq, child_seq)
);
CREATE INDEX job_deps_child ON job_deps (child_seq, parent_seq);
