-- The audit Action filter lists every distinct action the log records
-- (Store::audit_actions): with this index that is one index seek per action, not a
-- pass over the whole log (trial16 LOW).
CREATE INDEX IF NOT EXISTS audit_action ON audit (action);
