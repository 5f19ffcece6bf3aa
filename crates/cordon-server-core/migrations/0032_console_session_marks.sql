-- issue 17, trial35 HIGH-1: a console session row inserted in the database acted as any
-- API token (its own secret kept working, nothing recorded a sign-in). `mac` is the HMAC,
-- under the deployment's audit mark key, of the session's id hash, token id, start and
-- absolute end (`Store::create_session`); a session whose mark does not fit is refused.
-- Sessions opened before this version carry none and end (sign in again).
ALTER TABLE console_sessions ADD COLUMN mac TEXT;
