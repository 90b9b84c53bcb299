-- Migration 9: stats.
-- The per-minute rollup of what workers did (crate::stats): one counter per row,
-- added to with each heartbeat. Minute 0 holds the totals; the key leads with the
-- minute, so a chart reads a range and the totals are one short range.
CREATE TABLE stats (
    minute_ms BIGINT NOT NULL,
    queue     TEXT NOT NULL,
    metric    TEXT NOT NULL,
    value     BIGINT NOT NULL,
    PRIMARY KEY (minute_ms, queue, metric)
);
