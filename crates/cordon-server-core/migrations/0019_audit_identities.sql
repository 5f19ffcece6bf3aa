-- Identities, not names (issue 17). Plain SQL that SQLite and PostgreSQL both accept.

-- Audit records name the API token that acted by id, beside its display name.
ALTER TABLE audit ADD COLUMN actor_token_id BIGINT;

-- Where retention cut the chain: the last deleted record, whose hash the first kept
-- record carries as prev_hash (NULL: never cut).
ALTER TABLE audit_chain ADD COLUMN cut_id BIGINT;
ALTER TABLE audit_chain ADD COLUMN cut_hash TEXT;

-- API token names are unique case-insensitively after trimming: name_key is that form,
-- under a unique index. Tokens that already share a name are kept (revoking one must
-- not depend on a rename) but flagged, and their key made distinct with their id; names
-- under a reserved prefix (system, agent:, rule:, enrollment) are flagged too.
ALTER TABLE api_tokens ADD COLUMN name_key TEXT;
ALTER TABLE api_tokens ADD COLUMN name_flag TEXT;
UPDATE api_tokens SET name_key = LOWER(TRIM(name));
UPDATE api_tokens SET name_flag = 'duplicate name', name_key = name_key || '#' || CAST(id AS TEXT)
    WHERE EXISTS (SELECT 1 FROM api_tokens o WHERE o.name_key = api_tokens.name_key AND o.id < api_tokens.id);
UPDATE api_tokens SET name_flag = 'reserved name'
    WHERE name_flag IS NULL AND (name_key LIKE 'system%' OR name_key LIKE 'agent:%' OR name_key LIKE 'rule:%'
        OR name_key LIKE 'enrollment%');
CREATE UNIQUE INDEX api_tokens_name_key ON api_tokens (name_key);

-- Hosts are addressable (issue 17): each host's reported addresses one per row, so an
-- address claimed by two hosts is found with an index (hosts.addresses keeps the list
-- as shown). Filled from hosts.addresses by the server at start (JSON is read in Rust).
CREATE TABLE host_addresses (
    host_id TEXT NOT NULL,
    address TEXT NOT NULL,
    PRIMARY KEY (host_id, address)
);
CREATE INDEX host_addresses_address ON host_addresses (address);
-- Hostnames are compared case-insensitively for duplicates.
CREATE INDEX hosts_hostname_lower ON hosts (LOWER(hostname));
