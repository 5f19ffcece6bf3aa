-- Which notification outbox rows a server queued (issue 17, LOW-1): `mark` is an
-- HMAC-SHA256 under the deployment's audit mark key (derived from the CA private key, the
-- key of `audit.writer_mac`) over the row's target, audit record, kind and payload. A row
-- without a valid mark was written into the database directly and is never delivered.
-- NULL for rows queued before this column existed.
ALTER TABLE notify_outbox ADD COLUMN mark TEXT;
