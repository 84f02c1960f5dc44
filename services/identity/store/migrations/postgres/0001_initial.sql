-- Principals and their credentials, roles, sessions, tokens, lockouts, signing keys and the
-- audit trail of identity events. Times are seconds since the epoch.

CREATE TABLE principals (
    id text PRIMARY KEY,
    kind text NOT NULL,
    username text COLLATE "C" NOT NULL UNIQUE,
    display_name text NOT NULL,
    search_name text NOT NULL,
    email text NOT NULL,
    personal_id text UNIQUE,
    assurance integer NOT NULL,
    state text NOT NULL,
    labels text NOT NULL,
    password_hash text,
    totp_secret text,
    totp_pending text,
    totp_pending_expires double precision,
    totp_last_step bigint NOT NULL DEFAULT 0,
    created double precision NOT NULL,
    updated double precision NOT NULL,
    request_id text UNIQUE
);

CREATE TABLE role_bindings (
    principal_id text NOT NULL REFERENCES principals(id) ON DELETE CASCADE,
    role text NOT NULL,
    field text NOT NULL,
    PRIMARY KEY (principal_id, role, field)
);
CREATE INDEX role_bindings_by_role ON role_bindings(role, field);

CREATE TABLE sessions (
    id text PRIMARY KEY,
    principal_id text NOT NULL,
    auth_time double precision NOT NULL,
    amr text NOT NULL,
    created double precision NOT NULL,
    expires double precision NOT NULL,
    revoked double precision
);
CREATE INDEX sessions_by_principal ON sessions(principal_id);

CREATE TABLE refresh_tokens (
    token_hash text PRIMARY KEY,
    session_id text NOT NULL,
    created double precision NOT NULL,
    expires double precision NOT NULL,
    used double precision
);
CREATE INDEX refresh_tokens_by_session ON refresh_tokens(session_id);

CREATE TABLE access_tokens (
    jti text PRIMARY KEY,
    principal_id text NOT NULL,
    session_id text,
    issued double precision NOT NULL,
    expires double precision NOT NULL,
    revoked double precision
);
CREATE INDEX access_tokens_by_principal ON access_tokens(principal_id, expires);
CREATE INDEX access_tokens_by_session ON access_tokens(session_id);
CREATE INDEX access_tokens_revoked ON access_tokens(expires) WHERE revoked IS NOT NULL;

CREATE TABLE totp_challenges (
    id text PRIMARY KEY,
    principal_id text NOT NULL,
    expires double precision NOT NULL,
    source text NOT NULL
);

CREATE TABLE lockouts (
    key text PRIMARY KEY,
    failures integer NOT NULL,
    last_failure double precision NOT NULL,
    locked_until double precision NOT NULL
);

CREATE TABLE signing_keys (
    kid text PRIMARY KEY,
    private_pem bytea NOT NULL,
    public_jwk text NOT NULL,
    created double precision NOT NULL,
    retired double precision
);

CREATE TABLE events (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id text NOT NULL UNIQUE,
    time double precision NOT NULL,
    type text NOT NULL,
    principal_id text NOT NULL,
    principal_kind text NOT NULL,
    principal_name text NOT NULL,
    actor_id text NOT NULL,
    actor_kind text NOT NULL,
    actor_name text NOT NULL,
    role text NOT NULL,
    token_id text NOT NULL,
    token_expires double precision,
    reason text NOT NULL,
    source text NOT NULL,
    jwks text NOT NULL,
    published integer NOT NULL DEFAULT 0
);
CREATE INDEX events_by_principal ON events(principal_id, seq);
CREATE INDEX events_by_time ON events(time);
CREATE INDEX events_unpublished ON events(seq) WHERE published = 0;
