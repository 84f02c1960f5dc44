-- The latest version of every record: what get, search and updates read.
CREATE TABLE records (
    id text COLLATE "C" PRIMARY KEY,
    type text COLLATE "C" NOT NULL,
    field text COLLATE "C" NOT NULL,
    owner_id text COLLATE "C" NOT NULL,
    owner_kind text NOT NULL,
    version bigint NOT NULL,
    deleted boolean NOT NULL,
    schema_version integer NOT NULL,
    data jsonb,
    create_time bigint NOT NULL,
    update_time bigint NOT NULL,
    created_by text NOT NULL,
    created_by_kind text NOT NULL,
    updated_by text NOT NULL,
    updated_by_kind text NOT NULL,
    reason text NOT NULL,
    request_key text UNIQUE,
    purge_after bigint
);
CREATE INDEX records_by_type ON records(type, update_time, id);
CREATE INDEX records_by_type_created ON records(type, create_time, id);
CREATE INDEX records_by_owner ON records(owner_id, update_time, id);
CREATE INDEX records_by_update ON records(update_time, id);
CREATE INDEX records_to_purge ON records(purge_after) WHERE purge_after IS NOT NULL;

-- Every version ever written, append-only: only retention removes a purged record's rows.
CREATE TABLE record_versions (
    id text COLLATE "C" NOT NULL,
    type text COLLATE "C" NOT NULL,
    field text COLLATE "C" NOT NULL,
    owner_id text COLLATE "C" NOT NULL,
    owner_kind text NOT NULL,
    version bigint NOT NULL,
    deleted boolean NOT NULL,
    schema_version integer NOT NULL,
    data jsonb,
    create_time bigint NOT NULL,
    update_time bigint NOT NULL,
    created_by text NOT NULL,
    created_by_kind text NOT NULL,
    updated_by text NOT NULL,
    updated_by_kind text NOT NULL,
    reason text NOT NULL,
    PRIMARY KEY (id, version)
);
CREATE FUNCTION records_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
END;
$$;
CREATE TRIGGER record_versions_append_only BEFORE UPDATE ON record_versions
    FOR EACH ROW EXECUTE FUNCTION records_append_only();

-- Values of the types' indexed paths in the latest versions, for searches by value, with
-- the latest version's update time: a search by value reads its matches in page order.
CREATE TABLE record_keys (
    path text COLLATE "C" NOT NULL,
    value text COLLATE "C" NOT NULL,
    update_time bigint NOT NULL,
    record_id text COLLATE "C" NOT NULL,
    PRIMARY KEY (path, value, update_time, record_id)
);
CREATE INDEX record_keys_by_record ON record_keys(record_id);

-- Events of committed changes, written in the change's transaction, deleted once published.
CREATE TABLE outbox (
    sequence bigserial PRIMARY KEY,
    event_id text NOT NULL UNIQUE,
    event text NOT NULL,
    record_id text NOT NULL,
    type text NOT NULL,
    field text NOT NULL,
    owner_id text NOT NULL,
    owner_kind text NOT NULL,
    version bigint NOT NULL,
    actor_id text NOT NULL,
    actor_kind text NOT NULL,
    reason text NOT NULL,
    time bigint NOT NULL
);

-- Reads of sensitive records: who, what, when and why. Append-only.
CREATE TABLE access_audit (
    sequence bigserial PRIMARY KEY,
    time bigint NOT NULL,
    actor_id text NOT NULL,
    actor_kind text NOT NULL,
    record_id text NOT NULL,
    version bigint NOT NULL,
    action text NOT NULL,
    reason text NOT NULL
);
CREATE INDEX access_audit_by_record ON access_audit(record_id, sequence);
CREATE TRIGGER access_audit_append_only BEFORE UPDATE OR DELETE ON access_audit
    FOR EACH ROW EXECUTE FUNCTION records_append_only();

-- How far each bulk import has come: rows committed, in the same transaction as the rows.
CREATE TABLE imports (
    import_id text PRIMARY KEY,
    rows_done bigint NOT NULL,
    update_time bigint NOT NULL
);
