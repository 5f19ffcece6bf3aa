-- Who wrote an audit record, and which writer rows are real (issue 17, trial7).
-- `audit.writer_mac`: an HMAC of the record's chain hash under a secret that lives only
-- in the memory of the server process that appended it; before signing a checkpoint the
-- server checks that every record since its previous checkpoint carries its mark (or is
-- vouched for by another server's signed checkpoint), so a record added straight to the
-- database while it runs is signed as `foreign`. `audit_writers.proof`: the row signed
-- by the CA key (a JSON checkpoint of occasion `writer-live` naming the writer and its
-- `seen_at`); a row without a valid proof, or stamped in the future, counts for nothing.
-- Plain SQL that SQLite and PostgreSQL both accept.
ALTER TABLE audit ADD COLUMN writer_mac TEXT;
ALTER TABLE audit_writers ADD COLUMN proof TEXT;
