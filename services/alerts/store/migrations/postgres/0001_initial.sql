-- Rules, alerts and their evaluation state, the event history, silences and notifications.
-- Objects are stored whole as JSON in "body"; the other columns are what queries use.

CREATE TABLE rules (
    id text PRIMARY KEY,
    field text NOT NULL,
    origin text NOT NULL,
    body text NOT NULL
);

CREATE TABLE requests (
    kind text NOT NULL,
    request_id text NOT NULL,
    target text NOT NULL,
    PRIMARY KEY (kind, request_id)
);

CREATE TABLE meta (
    key text PRIMARY KEY,
    value bigint NOT NULL
);

CREATE TABLE devices (
    field text NOT NULL,
    site text NOT NULL,
    device text NOT NULL,
    last_sequence bigint NOT NULL,
    PRIMARY KEY (field, site, device)
);

CREATE TABLE evaluations (
    fingerprint text PRIMARY KEY,
    rule_id text NOT NULL,
    part bigint NOT NULL,
    field text NOT NULL,
    site text NOT NULL,
    device text NOT NULL,
    metric text NOT NULL,
    holds bigint NOT NULL,
    value double precision NOT NULL,
    last_time bigint NOT NULL,
    last_seen bigint NOT NULL,
    samples text NOT NULL,
    deadline bigint
);
CREATE INDEX evaluations_device ON evaluations (field, site, device);
CREATE INDEX evaluations_rule ON evaluations (rule_id);
CREATE INDEX evaluations_deadline ON evaluations (deadline) WHERE deadline IS NOT NULL;

CREATE TABLE alerts (
    fingerprint text PRIMARY KEY,
    rule_id text NOT NULL,
    part bigint NOT NULL,
    field text NOT NULL,
    state text NOT NULL,
    severity bigint NOT NULL,
    active_time bigint NOT NULL,
    due bigint,
    group_key text NOT NULL,
    body text NOT NULL
);
CREATE INDEX alerts_listing ON alerts (severity DESC, active_time DESC, fingerprint);
CREATE INDEX alerts_due ON alerts (due) WHERE due IS NOT NULL;
CREATE INDEX alerts_rule ON alerts (rule_id);
CREATE INDEX alerts_group ON alerts (group_key);

CREATE TABLE events (
    revision bigserial PRIMARY KEY,
    event_id text NOT NULL UNIQUE,
    fingerprint text NOT NULL,
    time bigint NOT NULL,
    field text NOT NULL,
    severity bigint NOT NULL,
    body text NOT NULL,
    published bigint NOT NULL DEFAULT 0
);
CREATE INDEX events_alert ON events (fingerprint, revision);
CREATE INDEX events_unpublished ON events (revision) WHERE published = 0;

CREATE TABLE silences (
    id text PRIMARY KEY,
    start_time bigint NOT NULL,
    end_time bigint NOT NULL,
    body text NOT NULL
);

CREATE TABLE alert_groups (
    group_key text PRIMARY KEY,
    labels text NOT NULL,
    first_time bigint NOT NULL,
    last_flush bigint,
    dirty bigint NOT NULL
);

CREATE TABLE notified (
    fingerprint text PRIMARY KEY,
    active_time bigint NOT NULL,
    notified_time bigint NOT NULL,
    resolved_sent bigint NOT NULL
);

CREATE TABLE notifications (
    id bigserial PRIMARY KEY,
    created bigint NOT NULL,
    body text NOT NULL,
    submitted bigint NOT NULL DEFAULT 0
);
CREATE INDEX notifications_pending ON notifications (id) WHERE submitted = 0;
