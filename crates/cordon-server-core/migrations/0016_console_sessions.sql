-- Console sign-in sessions (issue 16). The cookie carries a random session id; only its
-- SHA-256 hash is stored. A session is bound to the API token it was opened with and ends
-- when that token is revoked, on sign-out, after `idle` without a request and at `expires_at`.
CREATE TABLE console_sessions (
    id_hash    TEXT PRIMARY KEY,
    token_id   BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    last_seen  BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX console_sessions_token ON console_sessions (token_id);
CREATE INDEX console_sessions_expiry ON console_sessions (expires_at);
