-- Principals and their credentials, roles, sessions, tokens, lockouts, signing keys and the
-- audit trail of identity events. Times are seconds since the epoch.

CREATE TABLE principals (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    username TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    search_name TEXT NOT NULL,
    email TEXT NOT NULL,
    personal_id TEXT UNIQUE,
    assurance INTEGER NOT NULL,
    state TEXT NOT NULL,
    labels TEXT NOT NULL,
    password_hash TEXT,
    totp_secret TEXT,
    totp_pending TEXT,
    totp_pending_expires REAL,
    totp_last_step INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    request_id TEXT UNIQUE
) STRICT;

CREATE TABLE role_bindings (
    principal_id TEXT NOT NULL REFERENCES principals(id) ON DELETE CASCADE,
    role TEXT NOT NULL,
    field TEXT NOT NULL,
    PRIMARY KEY (principal_id, role, field)
) STRICT;
CREATE INDEX role_bindings_by_role ON role_bindings(role, field);

CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    principal_id TEXT NOT NULL,
    auth_time REAL NOT NULL,
    amr TEXT NOT NULL,
    created REAL NOT NULL,
    expires REAL NOT NULL,
    revoked REAL
) STRICT;
CREATE INDEX sessions_by_principal ON sessions(principal_id);

CREATE TABLE refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    session_id TEXT NOT NULL,
    created REAL NOT NULL,
    expires REAL NOT NULL,
    used REAL
) STRICT;
CREATE INDEX refresh_tokens_by_session ON refresh_tokens(session_id);

CREATE TABLE access_tokens (
    jti TEXT PRIMARY KEY,
    principal_id TEXT NOT NULL,
    session_id TEXT,
    issued REAL NOT NULL,
    expires REAL NOT NULL,
    revoked REAL
) STRICT;
CREATE INDEX access_tokens_by_principal ON access_tokens(principal_id, expires);
CREATE INDEX access_tokens_by_session ON access_tokens(session_id);
CREATE INDEX access_tokens_revoked ON access_tokens(expires) WHERE revoked IS NOT NULL;

CREATE TABLE totp_challenges (
    id TEXT PRIMARY KEY,
    principal_id TEXT NOT NULL,
    expires REAL NOT NULL,
    source TEXT NOT NULL
) STRICT;

CREATE TABLE lockouts (
    key TEXT PRIMARY KEY,
    failures INTEGER NOT NULL,
    last_failure REAL NOT NULL,
    locked_until REAL NOT NULL
) STRICT;

CREATE TABLE signing_keys (
    kid TEXT PRIMARY KEY,
    private_pem BLOB NOT NULL,
    public_jwk TEXT NOT NULL,
    created REAL NOT NULL,
    retired REAL
) STRICT;

CREATE TABLE events (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    time REAL NOT NULL,
    type TEXT NOT NULL,
    principal_id TEXT NOT NULL,
    principal_kind TEXT NOT NULL,
    principal_name TEXT NOT NULL,
    actor_id TEXT NOT NULL,
    actor_kind TEXT NOT NULL,
    actor_name TEXT NOT NULL,
    role TEXT NOT NULL,
    token_id TEXT NOT NULL,
    token_expires REAL,
    reason TEXT NOT NULL,
    source TEXT NOT NULL,
    jwks TEXT NOT NULL,
    published INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE INDEX events_by_principal ON events(principal_id, seq);
CREATE INDEX events_by_time ON events(time);
CREATE INDEX events_unpublished ON events(seq) WHERE published = 0;
