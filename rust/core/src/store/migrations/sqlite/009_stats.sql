-- Migration 9: stats.
-- The per-minute rollup of what workers did (crate::stats): one counter per row,
-- added to with each heartbeat. Minute 0 holds the totals; the key leads with the
-- minute, so a chart reads a range and the totals are one short range.
CREATE TABLE stats (
    minute_ms INTEGER NOT NULL,   -- the minute's start; 0: the total since the start
    queue     TEXT NOT NULL,      -- '' for counts that belong to no queue
    metric    TEXT NOT NULL,
    value     INTEGER NOT NULL,
    PRIMARY KEY (minute_ms, queue, metric)
) WITHOUT ROWID;
