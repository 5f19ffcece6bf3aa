-- The deployment's CA (trial28 MED-2): the SHA-256 fingerprint of the CA certificate
-- whose key signs the audit log's checkpoints and marks its records. Written by
-- `cordon server init` (and, for a database made before this version, by the first start
-- of a server whose CA signed the log's last checkpoint); a server whose data directory
-- holds another CA refuses to start on this database instead of signing into its log.
-- One row, id 1. Plain SQL that SQLite and PostgreSQL both accept.
CREATE TABLE deployment (
    id              INTEGER PRIMARY KEY,
    ca_fingerprint  TEXT NOT NULL
);
