-- Batch ids and device records become field-scoped: two fields may name a batch alike, and
-- a device (site, device) that reports to two fields has a record in each. Before, another
-- field's batch with a stored id was skipped as a redelivery, and a device's record took
-- the field of whichever batch came last.

-- An existing batch gets the field of the registered device whose "<site>/<device>/" its
-- id starts with (agents name batches <site>/<device>/<first sequence>, and the longest
-- such prefix wins, as site and device may hold a "/"), else the empty field. Set-based:
-- every "/" of every id ends a candidate prefix, looked up by equality.
CREATE TABLE batches_v2 (
    field TEXT NOT NULL,
    batch_id TEXT NOT NULL,
    received INTEGER NOT NULL,
    PRIMARY KEY (field, batch_id)
) STRICT, WITHOUT ROWID;

INSERT INTO batches_v2 (field, batch_id, received)
WITH RECURSIVE
    slash (batch_id, at) AS (
        SELECT batch_id, instr(batch_id, '/') FROM batches WHERE instr(batch_id, '/') > 0
        UNION ALL
        SELECT batch_id, at + instr(substr(batch_id, at + 1), '/') FROM slash
        WHERE instr(substr(batch_id, at + 1), '/') > 0
    ),
    prefix (text, field) AS MATERIALIZED (
        SELECT site || '/' || device || '/', min(field) FROM devices GROUP BY 1
    ),
    owner (batch_id, field, rank) AS (
        SELECT s.batch_id, p.field,
               row_number() OVER (PARTITION BY s.batch_id ORDER BY s.at DESC)
        FROM slash AS s JOIN prefix AS p ON p.text = substr(s.batch_id, 1, s.at)
    )
SELECT coalesce(o.field, ''), b.batch_id, b.received
FROM batches AS b LEFT JOIN owner AS o ON o.batch_id = b.batch_id AND o.rank = 1;

DROP TABLE batches;
ALTER TABLE batches_v2 RENAME TO batches;
CREATE INDEX batches_by_received ON batches (received);

-- The registry keyed by field first. Look-ups by (site, device) without a field (every field
-- a device reports to) have their own index. The old index on (field, site, device) is
-- the primary key now.
CREATE TABLE devices_v2 (
    field TEXT NOT NULL,
    site TEXT NOT NULL,
    device TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    first_seen INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    poll_interval INTEGER NOT NULL,
    last_sequence INTEGER NOT NULL,
    PRIMARY KEY (field, site, device)
) STRICT, WITHOUT ROWID;

INSERT INTO devices_v2
    (field, site, device, agent_id, first_seen, last_seen, poll_interval, last_sequence)
SELECT field, site, device, agent_id, first_seen, last_seen, poll_interval, last_sequence
FROM devices;

DROP TABLE devices;
ALTER TABLE devices_v2 RENAME TO devices;
CREATE INDEX devices_by_device ON devices (site, device);
