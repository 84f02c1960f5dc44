-- Batch ids and device records become field-scoped: two fields may name a batch alike, and
-- a device (site, device) that reports to two fields has a record in each. Before, another
-- field's batch with a stored id was skipped as a redelivery, and a device's record took
-- the field of whichever batch came last. Same tables and carried-over data as the SQLite
-- edition. Replicas of the previous version fail their writes from here on (their
-- messages are redelivered to upgraded replicas): upgrade them together.

-- An existing batch gets the field of the registered device whose "<site>/<device>/" its
-- id starts with (agents name batches <site>/<device>/<first sequence>, and the longest
-- such prefix wins, as site and device may hold a "/"), else the empty field. Set-based:
-- every "/" of every id ends a candidate prefix, hash-joined by equality. Copied in
-- received order, which keeps the BRIN index on received tight.
CREATE TABLE batches_v2 (
    field text COLLATE "C" NOT NULL,
    batch_id text COLLATE "C" NOT NULL,
    received bigint NOT NULL,
    PRIMARY KEY (field, batch_id)
);

INSERT INTO batches_v2 (field, batch_id, received)
WITH RECURSIVE
    slash (batch_id, at) AS (
        SELECT batch_id, strpos(batch_id, '/') FROM batches WHERE strpos(batch_id, '/') > 0
        UNION ALL
        SELECT batch_id, at + strpos(substr(batch_id, at + 1), '/') FROM slash
        WHERE strpos(substr(batch_id, at + 1), '/') > 0
    ),
    prefix (text, field) AS (
        SELECT site || '/' || device || '/', min(field) FROM devices GROUP BY 1
    ),
    owner (batch_id, field, rank) AS (
        SELECT s.batch_id, p.field,
               row_number() OVER (PARTITION BY s.batch_id ORDER BY s.at DESC)
        FROM slash AS s JOIN prefix AS p ON p.text = substr(s.batch_id, 1, s.at)
    )
SELECT coalesce(o.field, ''), b.batch_id, b.received
FROM batches AS b LEFT JOIN owner AS o ON o.batch_id = b.batch_id AND o.rank = 1
ORDER BY b.received;

DROP TABLE batches;
ALTER TABLE batches_v2 RENAME TO batches;
ALTER TABLE batches RENAME CONSTRAINT batches_v2_pkey TO batches_pkey;
CREATE INDEX batches_by_received ON batches USING brin (received);

-- The registry keyed by field first. Look-ups by (site, device) without a field (every field
-- a device reports to) have their own index. The old index on (field, site, device) is
-- the primary key now.
CREATE TABLE devices_v2 (
    field text COLLATE "C" NOT NULL,
    site text COLLATE "C" NOT NULL,
    device text COLLATE "C" NOT NULL,
    agent_id text NOT NULL,
    first_seen bigint NOT NULL,
    last_seen bigint NOT NULL,
    poll_interval bigint NOT NULL,
    last_sequence bigint NOT NULL,
    PRIMARY KEY (field, site, device)
) WITH (fillfactor = 70);

INSERT INTO devices_v2
    (field, site, device, agent_id, first_seen, last_seen, poll_interval, last_sequence)
SELECT field, site, device, agent_id, first_seen, last_seen, poll_interval, last_sequence
FROM devices;

DROP TABLE devices;
ALTER TABLE devices_v2 RENAME TO devices;
ALTER TABLE devices RENAME CONSTRAINT devices_v2_pkey TO devices_pkey;
CREATE INDEX devices_by_device ON devices (site, device);

-- A GOOD reading without a reason, most of them, is copied in with four columns.
ALTER TABLE points ALTER COLUMN quality SET DEFAULT 1;
