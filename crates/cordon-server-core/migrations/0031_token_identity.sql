-- issue 17, trial33 MED-B: an API token's name and role bound by the server. A name
-- edited in the database (`UPDATE api_tokens SET name = 'rule:wazuh-critical'`) made the
-- server write genuine, marked audit records under it. `identity_mac` is the HMAC, under
-- the deployment's audit mark key (derived from the CA key), of the token's id, role and
-- name; a row whose mark does not fit is refused. NULL for tokens made before this
-- version or without the CA key: bound at first use when the token's creation record in
-- the audit log names the same name and role.
ALTER TABLE api_tokens ADD COLUMN identity_mac TEXT;
