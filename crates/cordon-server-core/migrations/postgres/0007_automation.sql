-- Cordon automation (issue 7, PostgreSQL): events, rules, guardrails, approvals, notifications.
-- Times are Unix milliseconds; booleans are 0/1.
CREATE TABLE auto_events (
    id          TEXT PRIMARY KEY,
    received_at BIGINT NOT NULL,
    occurred_at BIGINT,
    source      TEXT NOT NULL,
    type        TEXT NOT NULL,
    tags        TEXT NOT NULL DEFAULT '[]',
    severity    TEXT NOT NULL,
    host_ref    TEXT NOT NULL,
    host_id     TEXT,
    status      TEXT NOT NULL,
    rule_name   TEXT,
    outcomes    TEXT NOT NULL DEFAULT '[]',
    raw         TEXT
);
CREATE INDEX auto_events_received ON auto_events (received_at);
CREATE INDEX auto_events_host ON auto_events (host_id, received_at);

CREATE TABLE auto_rules (
    id              BIGSERIAL PRIMARY KEY,
    name            TEXT NOT NULL UNIQUE,
    spec            TEXT NOT NULL,
    enabled         BIGINT NOT NULL,
    disabled_reason TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    updated_by      TEXT NOT NULL
);

CREATE TABLE auto_actions (
    id        BIGSERIAL PRIMARY KEY,
    at        BIGINT NOT NULL,
    host_id   TEXT NOT NULL,
    rule_name TEXT NOT NULL,
    event_id  TEXT NOT NULL,
    kind      TEXT NOT NULL
);
CREATE INDEX auto_actions_at ON auto_actions (kind, at);
CREATE INDEX auto_actions_host ON auto_actions (host_id, at);

CREATE TABLE auto_approvals (
    id               BIGSERIAL PRIMARY KEY,
    event_id         TEXT NOT NULL,
    host_id          TEXT NOT NULL,
    rule_name        TEXT NOT NULL,
    params           TEXT NOT NULL,
    reason           TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    status           TEXT NOT NULL,
    decided_by       TEXT,
    decided_at       BIGINT,
    decision_comment TEXT
);
CREATE UNIQUE INDEX auto_approvals_one_pending ON auto_approvals (host_id) WHERE status = 'pending';
CREATE INDEX auto_approvals_status ON auto_approvals (status, id);

CREATE TABLE auto_settings (
    id                   BIGINT PRIMARY KEY,
    enabled              BIGINT NOT NULL,
    cap_count            BIGINT NOT NULL,
    cap_window_secs      BIGINT NOT NULL,
    cooldown_secs        BIGINT NOT NULL,
    protected_labels     TEXT NOT NULL,
    event_retention_days BIGINT NOT NULL,
    event_retention_max  BIGINT NOT NULL,
    console_url          TEXT,
    updated_at           BIGINT NOT NULL,
    updated_by           TEXT
);
INSERT INTO auto_settings (id, enabled, cap_count, cap_window_secs, cooldown_secs, protected_labels,
    event_retention_days, event_retention_max, console_url, updated_at, updated_by)
VALUES (1, 1, 5, 600, 3600, '["cordon-protected"]', 30, 100000, NULL, 0, NULL);

CREATE TABLE notify_targets (
    id         BIGSERIAL PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    kind       TEXT NOT NULL,
    url        TEXT NOT NULL,
    events     TEXT NOT NULL,
    enabled    BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE notify_outbox (
    id              BIGSERIAL PRIMARY KEY,
    target_id       BIGINT NOT NULL,
    audit_id        BIGINT NOT NULL,
    kind            TEXT NOT NULL,
    payload         TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    status          TEXT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    lease_until     BIGINT,
    last_error      TEXT,
    delivered_at    BIGINT,
    UNIQUE (target_id, audit_id)
);
CREATE INDEX notify_outbox_due ON notify_outbox (status, next_attempt_at);

-- Audit records up to this id have been turned into notifications. Starts at the
-- current end of the audit log, so upgrading does not replay history.
CREATE TABLE notify_cursor (
    id       BIGINT PRIMARY KEY,
    audit_id BIGINT NOT NULL
);
INSERT INTO notify_cursor (id, audit_id) SELECT 1, COALESCE(MAX(id), 0) FROM audit;
