-- Structured fields of automatic actions in the audit log (issue 13): the event that
-- triggered the action and the rule that took it, so notifications read columns instead
-- of parsing `event=...; rule=...` back out of the detail text.
ALTER TABLE audit ADD COLUMN event_id TEXT;
ALTER TABLE audit ADD COLUMN rule_name TEXT;
