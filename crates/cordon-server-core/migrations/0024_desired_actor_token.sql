-- Who asked for a host's desired state, by identity (issue 17, trial10): the API token
-- id behind `hosts.actor` (a name only), so the agent's confirmation notification names
-- the token that asked (`asked by alice (token 3)`), as the request's audit record does.
-- NULL for the server, rules and states set before this column existed.
ALTER TABLE hosts ADD COLUMN actor_token_id BIGINT;
