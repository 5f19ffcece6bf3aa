-- The servers writing the audit log (issue 17, trial5): each running server (and each
-- offline `cordon server token create`) registers here at its start checkpoint and
-- refreshes `seen_at` (Unix ms, its own clock) every few seconds; an orderly stop
-- removes its row in the transaction of its shutdown checkpoint. A stop that finds no
-- other live writer signs `last_writer`: nothing may be appended until a server starts
-- again, so a record found after it was written while no server ran. Plain SQL that
-- SQLite and PostgreSQL both accept.
CREATE TABLE audit_writers (
    writer      TEXT PRIMARY KEY,
    started_at  BIGINT NOT NULL,
    seen_at     BIGINT NOT NULL
);
