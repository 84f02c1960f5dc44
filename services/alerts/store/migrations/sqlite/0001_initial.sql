-- Rules, alerts and their evaluation state, the event history, silences and notifications.
-- Objects are stored whole as JSON in "body"; the other columns are what queries use.

CREATE TABLE rules (
    id TEXT PRIMARY KEY,
    field TEXT NOT NULL,
    origin TEXT NOT NULL,
    body TEXT NOT NULL
) STRICT;

CREATE TABLE requests (
    kind TEXT NOT NULL,
    request_id TEXT NOT NULL,
    target TEXT NOT NULL,
    PRIMARY KEY (kind, request_id)
) STRICT;

CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) STRICT;

CREATE TABLE devices (
    field TEXT NOT NULL,
    site TEXT NOT NULL,
    device TEXT NOT NULL,
    last_sequence INTEGER NOT NULL,
    PRIMARY KEY (field, site, device)
) STRICT;

CREATE TABLE evaluations (
    fingerprint TEXT PRIMARY KEY,
    rule_id TEXT NOT NULL,
    part INTEGER NOT NULL,
    field TEXT NOT NULL,
    site TEXT NOT NULL,
    device TEXT NOT NULL,
    metric TEXT NOT NULL,
    holds INTEGER NOT NULL,
    value REAL NOT NULL,
    last_time INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    samples TEXT NOT NULL,
    deadline INTEGER
) STRICT;
CREATE INDEX evaluations_device ON evaluations (field, site, device);
CREATE INDEX evaluations_rule ON evaluations (rule_id);
CREATE INDEX evaluations_deadline ON evaluations (deadline) WHERE deadline IS NOT NULL;

CREATE TABLE alerts (
    fingerprint TEXT PRIMARY KEY,
    rule_id TEXT NOT NULL,
    part INTEGER NOT NULL,
    field TEXT NOT NULL,
    state TEXT NOT NULL,
    severity INTEGER NOT NULL,
    active_time INTEGER NOT NULL,
    due INTEGER,
    group_key TEXT NOT NULL,
    body TEXT NOT NULL
) STRICT;
CREATE INDEX alerts_listing ON alerts (severity DESC, active_time DESC, fingerprint);
CREATE INDEX alerts_due ON alerts (due) WHERE due IS NOT NULL;
CREATE INDEX alerts_rule ON alerts (rule_id);
CREATE INDEX alerts_group ON alerts (group_key);

CREATE TABLE events (
    revision INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    fingerprint TEXT NOT NULL,
    time INTEGER NOT NULL,
    field TEXT NOT NULL,
    severity INTEGER NOT NULL,
    body TEXT NOT NULL,
    published INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE INDEX events_alert ON events (fingerprint, revision);
CREATE INDEX events_unpublished ON events (revision) WHERE published = 0;

CREATE TABLE silences (
    id TEXT PRIMARY KEY,
    start_time INTEGER NOT NULL,
    end_time INTEGER NOT NULL,
    body TEXT NOT NULL
) STRICT;

CREATE TABLE alert_groups (
    group_key TEXT PRIMARY KEY,
    labels TEXT NOT NULL,
    first_time INTEGER NOT NULL,
    last_flush INTEGER,
    dirty INTEGER NOT NULL
) STRICT;

CREATE TABLE notified (
    fingerprint TEXT PRIMARY KEY,
    active_time INTEGER NOT NULL,
    notified_time INTEGER NOT NULL,
    resolved_sent INTEGER NOT NULL
) STRICT;

CREATE TABLE notifications (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created INTEGER NOT NULL,
    body TEXT NOT NULL,
    submitted INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE INDEX notifications_pending ON notifications (id) WHERE submitted = 0;
