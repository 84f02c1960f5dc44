-- Time series of the monitoring service, SQLite edition (the embedded default).
-- Times are integer microseconds since the Unix epoch; quality holds the
-- smartcity.common.v1.Quality numbers (1 = GOOD). Tables are STRICT so that a wrong type is
-- an error, as in PostgreSQL, and keyed tables are WITHOUT ROWID: the primary key is the
-- storage order, so a series' points lie together in time order.

CREATE TABLE series (
    id INTEGER PRIMARY KEY,
    field TEXT NOT NULL,
    site TEXT NOT NULL,
    device TEXT NOT NULL,
    metric TEXT NOT NULL,
    unit TEXT NOT NULL,
    UNIQUE (field, site, device, metric)
) STRICT;

-- Every reading, whatever its quality; value is NULL when the reading had none.
CREATE TABLE points (
    series_id INTEGER NOT NULL,
    time INTEGER NOT NULL,
    sequence INTEGER NOT NULL,
    value REAL,
    quality INTEGER NOT NULL,
    reason TEXT,
    PRIMARY KEY (series_id, time, sequence)
) STRICT, WITHOUT ROWID;

-- Batch ids already stored: a redelivered batch is recognised here and skipped whole.
CREATE TABLE batches (
    batch_id TEXT PRIMARY KEY,
    received INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX batches_by_received ON batches (received);

-- The newest reading of each series by (time, sequence), whatever its quality.
CREATE TABLE latest (
    series_id INTEGER PRIMARY KEY,
    time INTEGER NOT NULL,
    sequence INTEGER NOT NULL,
    value REAL,
    quality INTEGER NOT NULL,
    reason TEXT
) STRICT;

-- GOOD readings with a value, aggregated per series and minute / hour (bucket = start).
-- last_* is the reading with the greatest (time, sequence) in the bucket.
CREATE TABLE rollup_1m (
    series_id INTEGER NOT NULL,
    bucket INTEGER NOT NULL,
    count INTEGER NOT NULL,
    sum REAL NOT NULL,
    min REAL NOT NULL,
    max REAL NOT NULL,
    last_time INTEGER NOT NULL,
    last_sequence INTEGER NOT NULL,
    last_value REAL NOT NULL,
    PRIMARY KEY (series_id, bucket)
) STRICT, WITHOUT ROWID;

CREATE TABLE rollup_1h (
    series_id INTEGER NOT NULL,
    bucket INTEGER NOT NULL,
    count INTEGER NOT NULL,
    sum REAL NOT NULL,
    min REAL NOT NULL,
    max REAL NOT NULL,
    last_time INTEGER NOT NULL,
    last_sequence INTEGER NOT NULL,
    last_value REAL NOT NULL,
    PRIMARY KEY (series_id, bucket)
) STRICT, WITHOUT ROWID;

-- Every device seen. poll_interval is an estimate of the spacing of its batches (µs, 0
-- until two were seen); its metrics are those of its series.
CREATE TABLE devices (
    site TEXT NOT NULL,
    device TEXT NOT NULL,
    field TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    first_seen INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    poll_interval INTEGER NOT NULL,
    last_sequence INTEGER NOT NULL,
    PRIMARY KEY (site, device)
) STRICT, WITHOUT ROWID;
CREATE INDEX devices_by_field ON devices (field, site, device);
