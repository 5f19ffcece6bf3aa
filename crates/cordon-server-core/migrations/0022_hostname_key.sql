-- Hostnames compare in a normalised form for the duplicate flag and for addressing a
-- host by name (issue 17, trial5): NFKC, invisible characters dropped, case-folded with
-- ß as ss, trailing dots dropped (service::validate::hostname_key). Computed in Rust:
-- the server fills it for existing hosts at start. Plain SQL for SQLite and PostgreSQL.
ALTER TABLE hosts ADD COLUMN hostname_key TEXT;
CREATE INDEX hosts_hostname_key ON hosts (hostname_key);
