-- Issue 15 (scale-out). Times are Unix milliseconds.

-- Audit records that must become notifications, written in the same transaction as the
-- record itself: the notifier drains this table, so a record that commits late (two
-- replicas writing at once) is still delivered, which a "last id seen" cursor cannot
-- guarantee. notify_cursor is no longer read.
CREATE TABLE notify_pending (
    audit_id BIGINT PRIMARY KEY
);
INSERT INTO notify_pending (audit_id)
    SELECT id FROM audit
    WHERE id > (SELECT audit_id FROM notify_cursor WHERE id = 1)
      AND action IN ('quarantine', 'quarantine_dry_run', 'release', 'failed', 'tampered', 'approval_required');

-- Rate limit of agent-originated audit records per host: records written in the
-- current window, the window's start, and how many were collapsed into a count.
ALTER TABLE hosts ADD COLUMN agent_audit_window BIGINT NOT NULL DEFAULT 0;
ALTER TABLE hosts ADD COLUMN agent_audit_count BIGINT NOT NULL DEFAULT 0;
ALTER TABLE hosts ADD COLUMN agent_audit_suppressed BIGINT NOT NULL DEFAULT 0;

-- Keyset pagination of the host list (ORDER BY hostname, id).
CREATE INDEX hosts_order ON hosts (hostname, id);
