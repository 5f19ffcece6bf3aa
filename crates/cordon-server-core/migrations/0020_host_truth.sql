-- What the agent really reports about a host (issue 14, issue 19 item 9): the exceptions
-- not in force (`degraded`, JSON list), whether it enforces, its heartbeat (the server
-- derives `offline` from it), the claims standing on the host (JSON), and the last
-- revision whose confirmation was announced (so "quarantined" is notified once per
-- revision, also with several replicas).
ALTER TABLE hosts ADD COLUMN degraded TEXT NOT NULL DEFAULT '[]';
ALTER TABLE hosts ADD COLUMN enforcing BIGINT NOT NULL DEFAULT 1;
ALTER TABLE hosts ADD COLUMN heartbeat_ms BIGINT;
ALTER TABLE hosts ADD COLUMN claims TEXT NOT NULL DEFAULT '[]';
ALTER TABLE hosts ADD COLUMN confirmed_revision BIGINT NOT NULL DEFAULT 0;
-- Confirmations already recorded are not announced again.
UPDATE hosts SET confirmed_revision = applied_revision;
-- Hosts whose agent said it enforces nothing were stored as quarantined with a reason.
UPDATE hosts SET state = 'not_enforcing', enforcing = 0 WHERE state = 'quarantined' AND state_reason LIKE 'not enforcing%';
-- What a notification states about its record beyond the audit columns (JSON: the
-- revision, who asked, the exceptions not in force), written in the same transaction.
ALTER TABLE notify_pending ADD COLUMN facts TEXT;
