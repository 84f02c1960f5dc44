-- The receivers' outbox: every notification submitted for delivery, kept until it is
-- delivered or given up, and every attempt made to deliver it. Times are microseconds
-- since the Unix epoch.
CREATE TABLE notifications (
    id INTEGER PRIMARY KEY,
    receiver TEXT NOT NULL,
    body TEXT NOT NULL,
    submitted_at INTEGER NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER,
    error TEXT NOT NULL DEFAULT ''
) STRICT;

CREATE INDEX notifications_pending ON notifications (next_attempt_at) WHERE state = 'pending';

CREATE TABLE delivery_attempts (
    notification_id INTEGER NOT NULL REFERENCES notifications (id),
    number INTEGER NOT NULL,
    receiver TEXT NOT NULL,
    started_at INTEGER NOT NULL,
    duration_us INTEGER NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ('delivered', 'retry', 'failed')),
    code INTEGER,
    error TEXT NOT NULL,
    PRIMARY KEY (notification_id, number)
) STRICT;
