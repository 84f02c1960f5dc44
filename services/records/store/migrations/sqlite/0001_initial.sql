-- The latest version of every record: what get, search and updates read.
CREATE TABLE records (
    id TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    field TEXT NOT NULL,
    owner_id TEXT NOT NULL,
    owner_kind TEXT NOT NULL,
    version INTEGER NOT NULL,
    deleted INTEGER NOT NULL,
    schema_version INTEGER NOT NULL,
    data TEXT,
    create_time INTEGER NOT NULL,
    update_time INTEGER NOT NULL,
    created_by TEXT NOT NULL,
    created_by_kind TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    updated_by_kind TEXT NOT NULL,
    reason TEXT NOT NULL,
    request_key TEXT UNIQUE,
    purge_after INTEGER
) STRICT;
CREATE INDEX records_by_type ON records(type, update_time, id);
CREATE INDEX records_by_type_created ON records(type, create_time, id);
CREATE INDEX records_by_owner ON records(owner_id, update_time, id);
CREATE INDEX records_by_update ON records(update_time, id);
CREATE INDEX records_to_purge ON records(purge_after) WHERE purge_after IS NOT NULL;

-- Every version ever written, append-only: only retention removes a purged record's rows.
CREATE TABLE record_versions (
    id TEXT NOT NULL,
    type TEXT NOT NULL,
    field TEXT NOT NULL,
    owner_id TEXT NOT NULL,
    owner_kind TEXT NOT NULL,
    version INTEGER NOT NULL,
    deleted INTEGER NOT NULL,
    schema_version INTEGER NOT NULL,
    data TEXT,
    create_time INTEGER NOT NULL,
    update_time INTEGER NOT NULL,
    created_by TEXT NOT NULL,
    created_by_kind TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    updated_by_kind TEXT NOT NULL,
    reason TEXT NOT NULL,
    PRIMARY KEY (id, version)
) STRICT;
CREATE TRIGGER record_versions_append_only BEFORE UPDATE ON record_versions
BEGIN
    SELECT RAISE(ABORT, 'record history is append-only');
END;

-- Values of the types' indexed paths in the latest versions, for searches by value, with
-- the latest version's update time: a search by value reads its matches in page order.
CREATE TABLE record_keys (
    path TEXT NOT NULL,
    value TEXT NOT NULL,
    update_time INTEGER NOT NULL,
    record_id TEXT NOT NULL,
    PRIMARY KEY (path, value, update_time, record_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX record_keys_by_record ON record_keys(record_id);

-- Events of committed changes, written in the change's transaction, deleted once published.
CREATE TABLE outbox (
    sequence INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    event TEXT NOT NULL,
    record_id TEXT NOT NULL,
    type TEXT NOT NULL,
    field TEXT NOT NULL,
    owner_id TEXT NOT NULL,
    owner_kind TEXT NOT NULL,
    version INTEGER NOT NULL,
    actor_id TEXT NOT NULL,
    actor_kind TEXT NOT NULL,
    reason TEXT NOT NULL,
    time INTEGER NOT NULL
);

-- Reads of sensitive records: who, what, when and why. Append-only.
CREATE TABLE access_audit (
    sequence INTEGER PRIMARY KEY AUTOINCREMENT,
    time INTEGER NOT NULL,
    actor_id TEXT NOT NULL,
    actor_kind TEXT NOT NULL,
    record_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    action TEXT NOT NULL,
    reason TEXT NOT NULL
);
CREATE INDEX access_audit_by_record ON access_audit(record_id, sequence);
CREATE TRIGGER access_audit_append_only BEFORE UPDATE ON access_audit
BEGIN
    SELECT RAISE(ABORT, 'the access audit is append-only');
END;
CREATE TRIGGER access_audit_no_delete BEFORE DELETE ON access_audit
BEGIN
    SELECT RAISE(ABORT, 'the access audit is append-only');
END;

-- How far each bulk import has come: rows committed, in the same transaction as the rows.
CREATE TABLE imports (
    import_id TEXT PRIMARY KEY,
    rows_done INTEGER NOT NULL,
    update_time INTEGER NOT NULL
) STRICT;
