-- Migration 3: job env.
-- A job's own environment variables, as a JSON object of strings (NULL: none).
ALTER TABLE jobs ADD COLUMN env TEXT;
