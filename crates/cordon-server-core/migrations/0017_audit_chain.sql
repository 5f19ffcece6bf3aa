-- Tamper-evident audit log (issue 17): every record written from now on carries the
-- hash of the chained record before it and its own hash (see cordon_proto::audit_chain).
-- Records already present stay unchained: the chain starts at the first record written
-- after this migration, and `cordon audit verify` says so. Plain SQL that SQLite and
-- PostgreSQL both accept.
ALTER TABLE audit ADD COLUMN prev_hash TEXT;
ALTER TABLE audit ADD COLUMN hash TEXT;

-- The chain head: one row. Every append updates it first, which serialises appenders
-- (a row lock on PostgreSQL, so two replicas cannot fork the chain; the write lock on
-- SQLite) before the record's id is allocated, so chain order is id order.
CREATE TABLE audit_chain (
    id              INTEGER PRIMARY KEY,
    head_id         BIGINT,
    head_hash       TEXT NOT NULL,
    chained         BIGINT NOT NULL,
    -- Id of the last record written before the chain existed (0: none).
    started_after   BIGINT NOT NULL
);
INSERT INTO audit_chain (id, head_id, head_hash, chained, started_after)
    SELECT 1, NULL, '0000000000000000000000000000000000000000000000000000000000000000', 0, COALESCE(MAX(id), 0) FROM audit;
