-- Cordon server schema v1 (PostgreSQL). Times are Unix milliseconds; booleans are 0/1.
CREATE TABLE hosts (
    id               TEXT PRIMARY KEY,
    hostname         TEXT NOT NULL,
    os               TEXT,
    addresses        TEXT NOT NULL DEFAULT '[]',
    agent_version    TEXT,
    enrolled_at      BIGINT NOT NULL,
    last_seen        BIGINT,
    revoked          BIGINT NOT NULL DEFAULT 0,
    revision         BIGINT NOT NULL,
    quarantined      BIGINT NOT NULL DEFAULT 0,
    allow_json       TEXT NOT NULL DEFAULT '[]',
    message          TEXT,
    comment          TEXT,
    actor            TEXT,
    expires_at       BIGINT,
    state            TEXT NOT NULL,
    state_reason     TEXT,
    state_since      BIGINT NOT NULL,
    applied_revision BIGINT NOT NULL DEFAULT 0,
    digest           TEXT,
    backend          TEXT
);
CREATE INDEX hosts_hostname ON hosts (hostname);
CREATE INDEX hosts_expiry ON hosts (quarantined, expires_at);

CREATE TABLE host_labels (
    host_id TEXT NOT NULL REFERENCES hosts (id) ON DELETE CASCADE,
    label   TEXT NOT NULL,
    PRIMARY KEY (host_id, label)
);
CREATE INDEX host_labels_label ON host_labels (label);

CREATE TABLE audit (
    id       BIGSERIAL PRIMARY KEY,
    at       BIGINT NOT NULL,
    actor    TEXT NOT NULL,
    action   TEXT NOT NULL,
    host_id  TEXT,
    comment  TEXT,
    result   TEXT NOT NULL,
    detail   TEXT
);
CREATE INDEX audit_host ON audit (host_id, at);
CREATE INDEX audit_at ON audit (at);

CREATE TABLE api_tokens (
    id         BIGSERIAL PRIMARY KEY,
    name       TEXT NOT NULL,
    role       TEXT NOT NULL,
    hash       TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    revoked    BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE enroll_tokens (
    hash       TEXT PRIMARY KEY,
    labels     TEXT NOT NULL DEFAULT '[]',
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT,
    host_id    TEXT
);
